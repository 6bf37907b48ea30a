"""Alerts and their wire formats: EVE JSON, syslog RFC 5424 / RFC 3164, CEF and LEEF.

Signature ids (documented in the README): gid 7800, sid 7800001 DoS, 7800002 Probe,
7800003 R2L, 7800004 U2R. Our own data sits under the top-level key `kdd`, as Suricata's
plugins keep theirs under one key of their own. An alert on a snapshot of a connection still
open (the pipeline's interim verdicts) says so in every format: `interim` true, "still open".
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from feature_extractor.record import (
    CATEGORICAL,
    CLASSES,
    FEATURE_NAMES,
    RATE_FEATURES,
    ConnectionRecord,
)
from sensor.community_id import community_id_of, flow_key

GID = 7800
VENDOR = "kdd-sensor"
VERSION = "0.1.0"
SD_ID = "kdd@32473"  # 32473: the enterprise number reserved for documentation (RFC 5612)


@dataclass(frozen=True)
class ClassInfo:
    sid: int
    name: str
    category: str
    severity: int       # EVE: 1 highest
    syslog_severity: int  # RFC 5424 severity
    cef_severity: int   # 0-10


CLASS_INFO = {
    "dos": ClassInfo(GID * 1000 + 1, "DoS", "Attempted Denial of Service", 2, 3, 7),
    "probe": ClassInfo(GID * 1000 + 2, "Probe", "Detection of a Network Scan", 3, 4, 5),
    "r2l": ClassInfo(GID * 1000 + 3, "R2L", "Attempted User Privilege Gain", 1, 2, 8),
    "u2r": ClassInfo(GID * 1000 + 4, "U2R", "Attempted Administrator Privilege Gain", 1, 2, 10),
}
FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "local0": 16, "local1": 17,
              "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}


class computed_once:
    """functools.cached_property without the lock Python 3.11 takes on every first access:
    a flood makes one alert per packet, and the lock cost a tenth of an alert's time."""

    def __init__(self, compute):
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, alert, owner=None):
        if alert is None:
            return self
        value = alert.__dict__[self.name] = self.compute(alert)
        return value


@dataclass
class Alert:
    record: ConnectionRecord
    attack_class: str
    probabilities: dict[str, float]
    model_version: str
    pcap_filename: str | None = None
    pcap_cnt: int | None = None

    @computed_once
    def flow_key(self) -> bytes:
        """Computed when a sink first asks: an alert held back by a threshold never needs it."""
        r = self.record
        return flow_key(r.src_ip, r.dst_ip, r.ip_proto, r.src_port, r.dst_port)

    @computed_once
    def community_id(self) -> str:
        return community_id_of(self.flow_key)

    @property
    def info(self) -> ClassInfo:
        return CLASS_INFO[self.attack_class]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.attack_class]

    @property
    def flow_id(self) -> int:
        """Stable per connection instance; below 2**53 so that every JSON reader keeps it exact."""
        start_us = int(self.record.ts * 1e6 + 0.5).to_bytes(8, "big")
        digest = hashlib.blake2b(self.flow_key + start_us, digest_size=6).digest()
        return int.from_bytes(digest, "big") + 1

    def summary(self) -> str:
        r = self.record
        service, flag = r.features[2], r.features[3]
        still = " still open" if r.interim else ""
        return (f"KDD-SENSOR {self.info.name} connection{still} {r.src_ip}:{r.src_port} -> "
                f"{r.dst_ip}:{r.dst_port} {r.proto}/{service} {flag} "
                f"confidence {self.confidence:.2f}")


_seconds: dict[int, str] = {}


def eve_timestamp(ts: float) -> str:
    """RFC 3339 with microseconds and a colon-less offset, as Suricata writes it."""
    sec = int(ts)
    text = _seconds.get(sec)
    if text is None:
        if len(_seconds) > 4096:
            _seconds.clear()
        text = _seconds[sec] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    us = int((ts - sec) * 1e6 + 0.5)
    return f"{text}.{us if us < 1000000 else 999999:06d}+0000"


# The 41 features as one JSON object template: NSL-KDD's values are numbers and short
# identifiers (service, flag, protocol), so no escaping is needed inside it.
_FEATURES_JSON = "{" + ",".join(
    f'"{n}":"%s"' if n in CATEGORICAL else f'"{n}":%.2f' if n in RATE_FEATURES else f'"{n}":%d'
    for n in FEATURE_NAMES) + "}"
_ALERT_JSON = {
    cls: json.dumps({"action": "allowed", "gid": GID, "signature_id": info.sid, "rev": 1,
                     "signature": f"KDD-SENSOR {info.name} connection (CNN-LSTM)",
                     "category": info.category, "severity": info.severity},
                    separators=(",", ":"))
    for cls, info in CLASS_INFO.items()
}


_PROTO_UPPER = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMP"}


@functools.lru_cache(maxsize=64)
def _json_string(text: str) -> str:
    """A JSON string literal; the few values repeated on every alert are encoded once."""
    return json.dumps(text)


# A flood's connections share their features and the model's answer (the pipeline's cache
# hands out the same probabilities), so the parts of an EVE line that depend on nothing else
# are formatted once per distinct value: formatting the 41 features was a third of the time
# of an alert.
@functools.lru_cache(maxsize=4096)
def _verdict_json(cls: str, probabilities: tuple, model_version: str) -> str:
    probs = ",".join(f'"{k}":{v:.4f}' for k, v in probabilities)
    return (f'"alert":{_ALERT_JSON[cls]},"kdd":{{"class":"{cls}",'
            f'"confidence":{dict(probabilities)[cls]:.4f},"probabilities":{{{probs}}},'
            f'"model_version":{json.dumps(model_version)},')


@functools.lru_cache(maxsize=4096)
def _features_json(features: tuple) -> str:
    return (f'"service":"{features[2]}","flag":"{features[3]}",'
            f'"features":{_FEATURES_JSON % features}}}}}')


def eve_line(alert: Alert, host: str | None = None) -> str:
    """One EVE JSON alert, built from templates: a flood writes one per connection."""
    r = alert.record
    where = (f'"icmp_type":{r.src_port},"icmp_code":{r.dst_port}' if r.proto == "icmp"
             else f'"src_port":{r.src_port},"dest_port":{r.dst_port}')
    extra = ""
    if host:
        extra += f',"host":{_json_string(host)}'
    if alert.pcap_filename is not None:
        extra += f',"pcap_filename":{_json_string(alert.pcap_filename)}'
    if alert.pcap_cnt is not None:
        extra += f',"pcap_cnt":{alert.pcap_cnt}'
    interim = '"interim":true,' if r.interim else ""
    start = eve_timestamp(r.ts)
    last = start if r.last_ts == r.ts else eve_timestamp(r.last_ts)  # one packet: the same
    return (
        f'{{"timestamp":"{eve_timestamp(r.emit_ts)}","flow_id":{alert.flow_id},'
        f'"event_type":"alert","src_ip":"{r.src_ip}","dest_ip":"{r.dst_ip}",'
        f'"proto":"{_PROTO_UPPER[r.proto]}","community_id":"{alert.community_id}",{where}{extra},'
        f'{_verdict_json(alert.attack_class, tuple(alert.probabilities.items()), alert.model_version)}'
        f'{interim}"conn_start":"{start}","conn_last":"{last}",{_features_json(tuple(r.features))}')


def fast(alert: Alert) -> str:
    """Suricata's fast.log line: one readable line per alert."""
    r = alert.record
    info = alert.info
    when = datetime.fromtimestamp(r.emit_ts, UTC)
    stamp = when.strftime("%m/%d/%Y-%H:%M:%S") + f".{when.microsecond:06d}"
    ports = (f"{r.src_ip}:{r.src_port} -> {r.dst_ip}:{r.dst_port}" if r.proto != "icmp"
             else f"{r.src_ip} -> {r.dst_ip} (type {r.src_port} code {r.dst_port})")
    return (f"{stamp}  [**] [{GID}:{info.sid}:1] KDD-SENSOR {info.name} connection (CNN-LSTM) "
            f"[**] [Classification: {info.category}] [Priority: {info.severity}] "
            f"{{{r.proto.upper()}}} {ports} {r.features[2]}/{r.features[3]} "
            f"p={alert.confidence:.2f}{' still open' if r.interim else ''}")


def _sd_escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def rfc5424(alert: Alert, facility: str = "local5", hostname: str | None = None,
            app: str = "kdd-sensor", procid: int | None = None) -> str:
    r = alert.record
    pri = FACILITIES[facility] * 8 + alert.info.syslog_severity
    stamp = datetime.fromtimestamp(r.emit_ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = {
        "class": alert.attack_class, "confidence": f"{alert.confidence:.4f}",
        "sid": alert.info.sid, "src": r.src_ip, "spt": r.src_port, "dst": r.dst_ip,
        "dpt": r.dst_port, "proto": r.proto, "service": r.features[2], "flag": r.features[3],
        "community_id": alert.community_id, "flow_id": alert.flow_id,
        "model": alert.model_version,
    }
    if r.interim:
        params["interim"] = "true"
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_escape(v)}"' for k, v in params.items()) + "]"
    host = hostname or socket.gethostname() or "-"
    return f"<{pri}>1 {stamp} {host} {app} {procid or '-'} ALERT {sd} {alert.summary()}"


def rfc3164(alert: Alert, facility: str = "local5", hostname: str | None = None,
            app: str = "kdd-sensor", procid: int | None = None) -> str:
    pri = FACILITIES[facility] * 8 + alert.info.syslog_severity
    when = datetime.fromtimestamp(alert.record.emit_ts, UTC)
    stamp = f"{when:%b} {when.day:2d} {when:%H:%M:%S}"
    tag = f"{app}[{procid}]" if procid else app
    line = f"<{pri}>{stamp} {hostname or socket.gethostname()} {tag}: {alert.summary()} " \
           f"community_id={alert.community_id}"
    return line.encode()[:1024].decode("utf-8", "ignore")


def _cef_header(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|")


def _cef_ext(value: object) -> str:
    return (str(value).replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n")
            .replace("\r", "\\r"))


def cef(alert: Alert) -> str:
    r = alert.record
    info = alert.info
    ext = {
        "rt": int(r.emit_ts * 1000), "src": r.src_ip, "spt": r.src_port, "dst": r.dst_ip,
        "dpt": r.dst_port, "proto": r.proto.upper(), "app": r.features[2],
        "cs1Label": "class", "cs1": alert.attack_class,
        "cfp1Label": "confidence", "cfp1": f"{alert.confidence:.4f}",
        "cs2Label": "communityId", "cs2": alert.community_id,
        "cs3Label": "modelVersion", "cs3": alert.model_version,
        "cs4Label": "flag", "cs4": r.features[3],
        "start": int(r.ts * 1000), "end": int(r.last_ts * 1000),
        "in": r.features[5], "out": r.features[4],
    }
    if r.interim:
        ext.update(cs5Label="interim", cs5="true")
    header = "|".join(_cef_header(v) for v in (
        "CEF:0", VENDOR, VENDOR, VERSION, info.sid, f"{info.name} connection", info.cef_severity))
    return header + "|" + " ".join(f"{k}={_cef_ext(v)}" for k, v in ext.items())


def leef(alert: Alert) -> str:
    r = alert.record
    fields = {
        "devTime": int(r.emit_ts * 1000),
        "src": r.src_ip, "srcPort": r.src_port, "dst": r.dst_ip, "dstPort": r.dst_port,
        "proto": r.proto.upper(), "sev": alert.info.cef_severity, "cat": alert.info.category,
        "kddClass": alert.attack_class, "confidence": f"{alert.confidence:.4f}",
        "service": r.features[2], "flag": r.features[3], "communityId": alert.community_id,
        "modelVersion": alert.model_version,
    }
    if r.interim:
        fields["interim"] = "true"
    body = "\t".join(f"{k}={str(v).replace(chr(9), ' ')}" for k, v in fields.items())
    return f"LEEF:1.0|{VENDOR}|{VENDOR}|{VERSION}|{alert.info.sid}|{body}"


def probabilities_of(row: list[float]) -> dict[str, float]:
    return dict(zip(CLASSES, row, strict=True))
