"""`kdd-sensor extract`: captures to NSL-KDD rows (CSV), summary on stderr."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import TextIO

from feature_extractor.capture_file import CaptureError, feed_captures
from feature_extractor.extractor import Extractor, ExtractorConfig
from feature_extractor.record import FEATURE_NAMES, META_COLUMNS

PENDING_ROWS = 4096  # rows held before a write on the packet-by-packet path


def extract(paths: list[str], out: TextIO, meta: bool, config: ExtractorConfig | None = None,
            err: TextIO = sys.stderr) -> int:
    """Run the extractor over the captures; 0 on success, 1 if a capture was damaged."""
    ex = Extractor(replace(config or ExtractorConfig(), interim=()))  # records, no snapshots
    if meta:
        out.write(",".join(META_COLUMNS + FEATURE_NAMES) + "\n")

    def packet(ts: float, linktype: int, frame: bytes) -> None:
        ex.packet(ts, linktype, frame)
        if ex.records >= PENDING_ROWS:
            out.write(ex.drain_csv(meta))

    def feed_pcap(buf: bytes, pos: int, little: bool, nano: bool, linktype: int) -> int:
        pos = ex.feed_pcap(buf, pos, little, nano, linktype)
        out.write(ex.drain_csv(meta))
        return pos

    started = time.perf_counter()
    status = 0
    try:
        feed_captures(paths, packet, feed_pcap)
    except CaptureError as exc:
        print(f"kdd-sensor: error: {exc}", file=err)
        status = 1
    ex.finish(as_timeouts=True)
    out.write(ex.drain_csv(meta))
    out.flush()
    elapsed = time.perf_counter() - started
    print(summary(ex, elapsed), file=err)
    return status


def peak_rss_mb() -> int:
    """This process's own peak resident memory (VmHWM; ru_maxrss would count a parent's)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def summary(ex: Extractor, elapsed: float) -> str:
    records = sum(ex.connections.values())
    skipped = sum(ex.skipped.values())
    parts = [f"packets {ex.packets}", f"records {records} "
             f"({', '.join(f'{k} {v}' for k, v in sorted(ex.connections.items()))})",
             f"skipped {skipped}"]
    if skipped:
        parts[-1] += " (" + ", ".join(f"{k} {v}" for k, v in ex.skipped.most_common()) + ")"
    frag = ex.fragments.stats
    if frag["fragments"]:
        parts.append(f"fragments {frag['fragments']} (reassembled {frag['reassembled']}, "
                     f"bad {frag['bad_fragments']}, timed out {frag['fragment_timeouts']})")
    if ex.table.evicted:
        parts.append(f"evicted {ex.table.evicted}")
    rate = ex.packets / elapsed if elapsed > 0 else 0.0
    parts.append(f"{elapsed:.2f} s, {rate:,.0f} packets/s, peak RSS {peak_rss_mb()} MB")
    return "extract: " + "; ".join(parts)
