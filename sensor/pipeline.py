"""The sensor's data flow, one way:

    packets -> Extractor (decode, connections, windows) -> ConnectionRecord
            -> batch -> cache, or Encoding -> LiteRT model -> class probabilities
            -> connection log, and for attacks above their confidence:
            -> AlertFilter (thresholds, suppression) -> sinks (EVE, syslog, CEF/LEEF, journald)

Live capture and replay both feed `packet()`; live capture also calls `tick()` when idle.
A connection still open at its interim ages (extractor.interim) is judged on a snapshot too:
its alerts say so, the connection log keeps finished connections only, and a class alerted
on a snapshot is not alerted again when the connection ends.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, OrderedDict
from operator import attrgetter
from typing import TextIO

from feature_extractor.extractor import Extractor
from feature_extractor.record import CLASSES, FEATURE_NAMES, ConnectionRecord, format_features
from models.runtime import Classifier
from sensor.alerts import Alert, probabilities_of
from sensor.sinks import reopened
from sensor.thresholds import AlertFilter

CONNECTION_LOG_HEADER = ",".join(
    ("ts", "src_ip", "src_port", "dst_ip", "dst_port", "proto", "service", "flag",
     "predicted_class", "confidence") + FEATURE_NAMES)


INTERIM_MEMORY = 65536  # open connections whose snapshot alerted, remembered until they end


def _conn_key(r: ConnectionRecord) -> tuple:
    return (r.ts, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.proto)


class ConnectionLog:
    """Every connection with its prediction, for offline analysis and scoring."""

    def __init__(self, path: str):
        self.path = path
        self.fh: TextIO = open(path, "a", encoding="utf-8")
        if self.fh.tell() == 0:
            self.fh.write(CONNECTION_LOG_HEADER + "\n")

    def write(self, r: ConnectionRecord, cls: str, confidence: float) -> None:
        self.fh.write(f"{r.meta_prefix()},{r.features[2]},{r.features[3]},{cls},"
                      f"{confidence:.4f},{format_features(r.features)}\n")

    def reopen(self) -> None:
        self.fh = reopened(self.path, self.fh)

    def close(self) -> None:
        self.fh.close()


class Pipeline:
    def __init__(self, extractor: Extractor, classifier: Classifier, confidence: dict[str, float],
                 sinks: list, alert_filter: AlertFilter, connection_log: ConnectionLog | None,
                 batch_size: int = 256, flush_seconds: float = 0.2, cache_size: int = 65536,
                 host: str | None = None):
        self.extractor = extractor
        self.classifier = classifier
        self.confidence = confidence
        self.sinks = sinks
        self.filter = alert_filter
        self.connection_log = connection_log
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.cache: OrderedDict[tuple, tuple[str, float, dict]] = OrderedDict()
        self.cache_size = cache_size
        self.host = host
        self.pcap_filename: str | None = None
        self.pending: list[ConnectionRecord] = []
        self.pending_since = 0.0
        self.by_class: Counter = Counter()
        self.alerts: Counter = Counter()
        self.batches = 0
        self.inference_seconds = 0.0
        self.inference_max = 0.0
        self.cache_hits = 0
        self.first_alert_ts: dict[str, float] = {}
        self.snapshots: Counter = Counter()  # snapshots of open connections, by class
        self.interim_alerted: OrderedDict[tuple, set[str]] = OrderedDict()
        self.interim_repeats = 0  # alerts not repeated: the connection's snapshot had one

    # -- input --------------------------------------------------------------------------------

    @property
    def packets(self) -> int:
        return self.extractor.packets

    def packet(self, ts: float, linktype: int, frame: bytes) -> None:
        ex = self.extractor
        ex.packet(ts, linktype, frame)
        if ex.records:
            self._collect()

    def feed_batch(self, data: bytes, meta: bytes, linktype: int) -> None:
        """A live libpcap batch (the compiled path)."""
        self.extractor.feed_batch(data, meta, linktype)
        if self.extractor.records:
            self._collect()

    def feed_pcap(self, buf: bytes, pos: int, little: bool, nano: bool, linktype: int) -> int:
        """The complete records of a classic pcap buffer from pos (the compiled path)."""
        pos = self.extractor.feed_pcap(buf, pos, little, nano, linktype)
        if self.extractor.records:
            self._collect()
        return pos

    def tick(self, now_packet_time: float | None = None) -> None:
        """Idle work: move packet time on (live), flush a batch held too long, service sinks."""
        if now_packet_time is not None:
            self.extractor.advance(now_packet_time)
            if self.extractor.records:
                self._collect()
        if self.pending and time.monotonic() - self.pending_since >= self.flush_seconds:
            self.flush()
        for sink in self.sinks:
            sink.tick()

    def finish(self, as_timeouts: bool = False) -> None:
        """End of input (`as_timeouts`: see Extractor.finish) or shutdown: every open
        connection through the model and the sinks."""
        self.extractor.finish(as_timeouts)
        self._collect()
        self.flush()

    def _collect(self) -> None:
        if not self.pending:
            self.pending_since = time.monotonic()
        records = self.extractor.drain()
        snapshots = self.extractor.drain_snapshots()
        if snapshots:  # both in decision order: a snapshot comes before its connection's end
            records = list(heapq.merge(snapshots, records, key=attrgetter("emit_ts")))
        self.pending.extend(records)
        if (len(self.pending) >= self.batch_size
                or time.monotonic() - self.pending_since >= self.flush_seconds):
            self.flush()

    # -- classification -----------------------------------------------------------------------

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for i in range(0, len(pending), self.batch_size):
            self._classify(pending[i:i + self.batch_size])

    def _classify(self, batch: list[ConnectionRecord]) -> None:
        # Keyed by the 41 raw features, which decide the encoding: a flood's repeats skip the
        # encoding as well as the model (encoding was a fifth of a spoofed flood's time), and
        # repeats within one batch go to the model once. An answer is kept as Python values
        # (class, confidence, probabilities), so a repeat costs a dict lookup.
        answers: list = [None] * len(batch)
        misses: dict[tuple, list[int]] = {}
        cache = self.cache
        for i, record in enumerate(batch):
            key = tuple(record.features)
            hit = cache.get(key)
            if hit is None:
                misses.setdefault(key, []).append(i)
            else:
                answers[i] = hit
        self.cache_hits += len(batch) - len(misses)
        if misses:
            x = self.classifier.encoding.encode([batch[where[0]].features
                                                 for where in misses.values()])
            started = time.perf_counter()
            out = self.classifier.predict_encoded(x)
            took = time.perf_counter() - started
            self.batches += 1
            self.inference_seconds += took
            self.inference_max = max(self.inference_max, took)
            for (key, where), row in zip(misses.items(), out.tolist(), strict=True):
                k = max(range(len(row)), key=row.__getitem__)  # the first maximum, as argmax
                answer = cache[key] = (CLASSES[k], row[k], probabilities_of(row))
                for i in where:
                    answers[i] = answer
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
        log = self.connection_log
        by_class = self.by_class
        confidence = self.confidence
        version = self.classifier.version
        pcap = self.pcap_filename
        interim_alerted = self.interim_alerted
        for record, (cls, p, probabilities) in zip(batch, answers, strict=True):
            alert = cls != "normal" and p >= confidence[cls]
            if record.interim:
                self.snapshots[cls] += 1
                key = _conn_key(record) if alert else None
                if key is None:
                    continue
                if cls in interim_alerted.get(key, ()):
                    self.interim_repeats += 1
                elif self._alert(Alert(record, cls, probabilities, version, pcap,
                                       record.emit_packet if pcap else None)):
                    self._remember_interim(key, cls)
                continue
            by_class[cls] += 1
            if log is not None:
                log.write(record, cls, p)
            if interim_alerted and cls in interim_alerted.pop(_conn_key(record), ()) and alert:
                self.interim_repeats += 1
            elif alert:
                self._alert(Alert(record, cls, probabilities, version, pcap,
                                  record.emit_packet if pcap else None))

    def _remember_interim(self, key: tuple, cls: str) -> None:
        """A class sent for an open connection. Bounded: a connection forgotten here alerts
        again, nothing is lost."""
        self.interim_alerted.setdefault(key, set()).add(cls)
        while len(self.interim_alerted) > INTERIM_MEMORY:
            self.interim_alerted.popitem(last=False)

    def _alert(self, alert: Alert) -> bool:
        """Whether the alert went out (thresholds and suppression may hold it back)."""
        if not self.filter.allow(alert):
            return False
        self.alerts[alert.attack_class] += 1
        self.first_alert_ts.setdefault(alert.attack_class, alert.record.emit_ts)
        for sink in self.sinks:
            sink.emit(alert)
        return True

    # -- operations ---------------------------------------------------------------------------

    def reopen(self) -> None:
        for sink in self.sinks:
            sink.reopen()
        if self.connection_log is not None:
            self.connection_log.reopen()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        if self.connection_log is not None:
            self.connection_log.close()

    def stats(self) -> dict:
        ex = self.extractor
        out = {
            "packets": self.packets,
            "decode_errors": dict(ex.skipped),
            "tunnelled": dict(ex.tunnelled),
            "capture_loss": ex.capture_loss,
            "connections_active": len(ex.table),
            "connections_expired": dict(ex.table.expired),
            "connections_evicted": ex.table.evicted,
            "records": dict(ex.connections),
            "predicted": dict(self.by_class),
            "snapshots": dict(self.snapshots),
            "interim_repeats": self.interim_repeats,
            "alerts": dict(self.alerts),
            "suppressed": dict(self.filter.suppressed),
            "thresholded": dict(self.filter.thresholded),
            "inference_batches": self.batches,
            "inference_seconds": round(self.inference_seconds, 4),
            "inference_max_ms": round(self.inference_max * 1000, 3),
            "cache_hits": self.cache_hits,
            "fragments": dict(ex.fragments.stats),
        }
        for sink in self.sinks:
            out[f"sink_{getattr(sink, 'name', type(sink).__name__)}"] = sink.stats()
        return out
