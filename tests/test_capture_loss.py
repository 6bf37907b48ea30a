"""Capture loss as Zeek estimates it on a span port: ACKs for TCP data the sensor never saw.

The expected figures come from the captures themselves (read with scapy, not with the kernel):
segments are taken out of real sessions, and each one the peer later acknowledges is one gap
of its length.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap, wrpcap

from feature_extractor.capture_file import read_captures
from feature_extractor.extractor import Extractor
from sensor.stats import LossWatch, log_line, prometheus_text
from tests.conftest import PCAPS

SESSIONS = ["realtools/normal_ssh.pcap", "realtools/normal_ftp.pcap",
            "realtools/normal_http_upload.pcap"]


def _loss(frames: list[tuple[float, int, bytes]]) -> dict[str, int]:
    ex = Extractor()
    for ts, linktype, frame in frames:
        ex.packet(ts, linktype, frame)
        ex.drain()
    ex.finish()
    ex.drain()
    return ex.capture_loss


def _frames(packets) -> list[tuple[float, int, bytes]]:
    return [(float(p.time), 1, bytes(p)) for p in packets]


def _side(p) -> tuple:
    return (p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport)


def _peer(side: tuple) -> tuple:
    return (side[2], side[3], side[0], side[1])


def _covers(ack: int, end: int) -> bool:
    return (ack - end) % 2**32 < 2**31


def _acks_judged(packets) -> int:
    """ACKs sent once the other side has shown where its stream starts (a SYN or data)."""
    started: set[tuple] = set()
    n = 0
    for p in packets:
        if TCP not in p:
            continue
        side = _side(p)
        if "A" in p[TCP].flags and _peer(side) in started:
            n += 1
        if "S" in p[TCP].flags or len(p[TCP].payload):
            started.add(side)
    return n


def _sequence_space(p) -> int:
    return len(p[TCP].payload) + ("F" in p[TCP].flags)


def _drop_acked_segments(packets, every: int):
    """Every `every`-th data segment of a direction whose previous drop the peer has ACKed,
    whose bytes no other packet carries: (kept packets, those dropped and later ACKed)."""
    carried = Counter((_side(p), p[TCP].seq, len(p[TCP].payload))
                      for p in packets if TCP in p and len(p[TCP].payload))
    dropped: set[int] = set()
    waiting: dict[tuple, tuple[int, int]] = {}  # side -> (its dropped packet, sequence end)
    acked: list[int] = []
    seen = 0
    for i, p in enumerate(packets):
        if TCP not in p:
            continue
        side, length = _side(p), len(p[TCP].payload)
        peer = _peer(side)
        if "A" in p[TCP].flags and peer in waiting and _covers(p[TCP].ack, waiting[peer][1]):
            acked.append(waiting.pop(peer)[0])
        if length and side not in waiting:
            seen += 1
            if seen % every == 0 and carried[(side, p[TCP].seq, length)] == 1:
                dropped.add(i)
                waiting[side] = (i, (p[TCP].seq + length) % 2**32)
    return [p for i, p in enumerate(packets) if i not in dropped], [packets[i] for i in acked]


@pytest.mark.parametrize("name", SESSIONS)
def test_segments_never_captured_are_counted_once_each_when_acked(name):
    packets = rdpcap(str(PCAPS / name))
    kept, lost = _drop_acked_segments(packets, every=3)
    assert lost, "the capture must have segments to take out"
    assert _loss(_frames(packets))["gaps"] == 0
    loss = _loss(_frames(kept))
    assert loss == {"acks": _acks_judged(kept), "gaps": len(lost),
                    "gap_bytes": sum(_sequence_space(p) for p in lost)}


@pytest.mark.parametrize("name", SESSIONS)
def test_a_segment_overtaken_on_the_wire_is_no_loss(name):
    packets = list(rdpcap(str(PCAPS / name)))
    swapped = 0
    for i in range(len(packets) - 1):
        a, b = packets[i], packets[i + 1]
        if (TCP in a and TCP in b and _side(a) == _side(b) and len(a[TCP].payload)
                and len(b[TCP].payload)):
            packets[i], packets[i + 1] = b, a
            swapped += 1
    assert swapped
    assert _loss(_frames(packets))["gaps"] == 0


@pytest.mark.parametrize("path", sorted(PCAPS.glob("realtools/*.pcap")), ids=lambda p: p.name)
def test_whole_captures_show_no_loss(path):
    assert _loss(list(read_captures([str(path)])))["gaps"] == 0


def test_the_replay_summary_reports_capture_loss(tmp_path):
    packets = rdpcap(str(PCAPS / "realtools/normal_ftp.pcap"))
    kept, lost = _drop_acked_segments(packets, every=3)
    path = tmp_path / "lossy.pcap"
    wrpcap(str(path), kept)
    out = subprocess.run([sys.executable, "-m", "sensor.cli", "replay", str(path), "--eve",
                          str(tmp_path / "eve.json"), "--no-progress"],
                         capture_output=True, text=True, check=True)
    acks = _acks_judged(kept)
    assert (f"{100 * len(lost) / acks:.2f}% ({len(lost):,} of {acks:,} TCP ACKs for data "
            f"never captured, {sum(_sequence_space(p) for p in lost):,} bytes)") in out.stderr


def test_prometheus_and_the_log_line_carry_the_counters():
    packets = rdpcap(str(PCAPS / "realtools/normal_ssh.pcap"))
    kept, lost = _drop_acked_segments(packets, every=3)
    ex = Extractor()
    for ts, linktype, frame in _frames(kept):
        ex.packet(ts, linktype, frame)
        ex.drain()
    stats = {"packets": ex.packets, "decode_errors": {}, "tunnelled": {},
             "capture_loss": ex.capture_loss, "connections_active": 0, "connections_expired": {},
             "connections_evicted": 0, "records": {}, "predicted": {}, "snapshots": {},
             "interim_repeats": 0, "alerts": {},
             "suppressed": {}, "thresholded": {}, "inference_batches": 0,
             "inference_seconds": 0.0, "cache_hits": 0}
    text = prometheus_text(stats)
    assert f"kdd_sensor_tcp_gaps_total {len(lost)}\n" in text
    assert f"kdd_sensor_tcp_acks_total {_acks_judged(kept)}\n" in text
    assert f"capture_loss={100 * len(lost) / _acks_judged(kept):.2f}%" in log_line(stats)


def test_a_warning_once_an_interval_loses_more_than_a_tenth():
    watch = LossWatch()
    assert watch.check({"acks": 1000, "gaps": 99}) is None       # 9.9%
    assert watch.check({"acks": 1050, "gaps": 140}) is None      # 50 ACKs: too few to judge
    warning = watch.check({"acks": 2050, "gaps": 300})          # 160 of 1000 in this interval
    assert warning is not None and "16.0%" in warning
    assert watch.check({"acks": 3050, "gaps": 301}) is None      # the mirror is mended


def test_data_on_a_syn_is_no_gap_and_counts_whole():
    """TCP Fast Open: the SYN carries data, and the SYN-ACK acknowledges both."""
    from scapy.layers.l2 import Ether

    def frame(src, dst, flags, seq, ack, payload=b""):
        return bytes(Ether() / IP(src=src[0], dst=dst[0]) / TCP(
            sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack) / payload)

    c, s = ("192.0.2.1", 40000), ("192.0.2.2", 443)
    frames = [frame(c, s, "S", 1000, 0, b"x" * 10),
              frame(s, c, "SA", 5000, 1011),
              frame(c, s, "A", 1011, 5001),
              frame(s, c, "PA", 5001, 1011, b"y" * 20),
              frame(c, s, "A", 1011, 5021)]
    ex = Extractor()
    for i, f in enumerate(frames):
        ex.packet(i * 0.01, 1, f)
    ex.finish()
    assert ex.capture_loss == {"acks": 4, "gaps": 0, "gap_bytes": 0}
    (record,) = ex.drain()
    assert (record.features[4], record.features[5]) == (10, 20)  # src_bytes, dst_bytes
