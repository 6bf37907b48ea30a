"""Snapshots of connections still open (ExtractorConfig.interim): each is the record its
connection would get if it ended at that moment, they leave every finished record as it was,
and they come at the ages asked.

The oracle is the extractor's own end of input, which a snapshot's code does not use: fed the
same packets up to the snapshot's moment and told to finish, the extractor ends its open
connections one after another, least recently active first, and that first one's record sees
the windows exactly as the snapshot did.
"""

from __future__ import annotations

import random
import struct

import pytest

from feature_extractor.capture_file import read_captures
from feature_extractor.extractor import Extractor, ExtractorConfig
from tests.conftest import PCAPS

RAW_IPV4 = 101
SYN, RST, ACK, FIN, PSH = 0x02, 0x04, 0x10, 0x01, 0x08


def _frame(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
           payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 1, 0, 64, 6, 0,
                     bytes([10, 0, 0, src]), bytes([10, 0, 0, dst]))
    return ip + tcp + payload


def _connection(t: float, client: int, server: int, sport: int, dport: int, kind: str,
                duration: float) -> list[tuple[float, bytes]]:
    """One TCP connection's frames: closed (SF), refused (REJ), unanswered (S0), or left open
    with a client segment every second."""
    c = (client, server, sport, dport)
    s = (server, client, dport, sport)
    out = [(t, _frame(*c, 1000, 0, SYN))]
    if kind == "rej":
        return out + [(t + 0.001, _frame(*s, 0, 1001, RST | ACK))]
    if kind == "s0":
        return out
    out += [(t + 0.001, _frame(*s, 5000, 1001, SYN | ACK)), (t + 0.002, _frame(*c, 1001, 5001, ACK))]
    seq, at = 1001, t + 0.003
    while at < t + duration:
        out.append((at, _frame(*c, seq, 5001, PSH | ACK, b"hello\r\n")))
        seq += 7
        at += 1.0
    if kind == "open":
        return out
    end = t + duration
    return out + [(end, _frame(*c, seq, 5001, FIN | ACK)), (end + 0.001, _frame(*s, 5001, seq + 1, FIN | ACK)),
                  (end + 0.002, _frame(*c, seq + 1, 5002, ACK))]


def random_traffic(seed: int, connections: int = 2000, span: float = 40.0):
    """Many clients to three servers on six services (one unnamed, keyed by its port): host
    and service windows fill past their 255 connections, so their oldest entries drop. The
    connections left open talk to the end (a silent one waits for its next packet)."""
    rng = random.Random(seed)
    frames = []
    for i in range(connections):
        t, kind = rng.uniform(0, span), rng.choice(("sf", "sf", "rej", "s0", "open"))
        frames += _connection(t, rng.randrange(1, 20), rng.choice((100, 101, 102)), 20000 + i,
                              rng.choice((21, 23, 25, 80, 7777, 8888)), kind,
                              span + 1 - t if kind == "open" else rng.choice((0.05, 0.5, 3.0, 12.0)))
    frames.sort(key=lambda f: f[0])
    return frames


def _key(r) -> tuple:
    return (r.ts, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.proto)


def snapshots_against_oracle(packets: list[tuple[float, int, bytes]], age: float) -> int:
    """Check every moment's least recently active snapshot against the oracle; how many."""
    ex = Extractor(ExtractorConfig(interim=(age,)))
    moments = []
    for i, (ts, linktype, frame) in enumerate(packets):
        ex.packet(ts, linktype, frame)
        ex.drain()
        by_moment: dict[float, list] = {}  # a gap in packet time can pass several
        for s in ex.drain_snapshots():
            by_moment.setdefault(s.emit_ts, []).append(s)
        moments += [(i, at, snaps) for at, snaps in by_moment.items()]
    checked = 0
    for i, at, snaps in moments:
        assert all(s.interim == 1 for s in snaps)
        oracle = Extractor()
        for ts, linktype, frame in packets[:i]:
            oracle.packet(ts, linktype, frame)
        oracle.advance(at)
        oracle.drain()
        oracle.finish()
        first = oracle.drain()[0]
        same = [s for s in snaps if _key(s) == _key(first)]
        if not same:  # a closed connection waiting out its last packets: never snapshotted
            continue
        assert same[0].features == first.features, (same[0], first)
        assert same[0].last_ts == first.last_ts and first.interim == 0
        checked += 1
    return checked


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_snapshot_is_the_record_its_connection_would_get_ending_then(seed):
    packets = [(ts, RAW_IPV4, frame) for ts, frame in random_traffic(seed)]
    assert snapshots_against_oracle(packets, age=0.5) >= 30


@pytest.mark.parametrize(("first_server", "then_server", "then_port"),
                         [(100, 100, 80), (100, 101, 23), (102, 101, 23)],
                         ids=["host window", "service window", "service window, other host"])
def test_a_full_windows_oldest_entry_is_the_only_one_of_its_kind(first_server, then_server,
                                                                 then_port):
    # A telnet connection to `first_server`, then an open telnet connection to server 100,
    # then 254 connections fill the window that drops that first one: server 100's own (to
    # http), or telnet's (to server 101). The oldest entry is then the only one of its
    # service in the host window (of its host in the service window): dropping it takes a
    # partner away, unless the snapshot brings the same one back.
    frames = _connection(0.0, 1, first_server, 30000, 23, "sf", 0.05)
    frames += _connection(0.5, 2, 100, 30001, 23, "open", 40.0)
    for i in range(254):
        frames += _connection(1.0 + 0.1 * i, 3, then_server, 31000 + i, then_port, "sf", 0.05)
    frames.sort(key=lambda f: f[0])
    assert snapshots_against_oracle([(ts, RAW_IPV4, f) for ts, f in frames], age=0.5) >= 10


@pytest.mark.parametrize("name", ["telnet_u2r.pcap", "ftp_guess_many.pcap", "scan_udp.pcap",
                                  "slowloris.pcap"])
def test_snapshots_of_real_captures_match_the_oracle(name):
    packets = list(read_captures([str(PCAPS / "realtools" / name)]))
    assert snapshots_against_oracle(packets, age=0.5) >= 8


@pytest.mark.parametrize("seed", [1, 2])
def test_snapshots_leave_every_finished_record_as_it_was(seed):
    frames = random_traffic(seed)
    out = []
    for interim in ((), (0.5, 2.0)):
        ex = Extractor(ExtractorConfig(interim=interim))
        snapshots = 0
        for ts, frame in frames:
            ex.packet(ts, RAW_IPV4, frame)
            snapshots += len(ex.drain_snapshots())
        ex.finish(as_timeouts=True)
        snapshots += len(ex.drain_snapshots())
        out.append(([(_key(r), r.features, r.emit_ts) for r in ex.drain()], snapshots))
    (plain, none), (with_snapshots, taken) = out
    assert none == 0 and taken > 1000
    assert with_snapshots == plain


def test_snapshots_come_at_the_ages_asked_then_every_last_age():
    frames = _connection(0.0, 1, 2, 40000, 23, "open", 100.0)
    ex = Extractor(ExtractorConfig(interim=(10.0, 30.0)))
    snaps = []
    for ts, frame in frames:
        ex.packet(ts, RAW_IPV4, frame)
        snaps += ex.drain_snapshots()
    assert ex.drain() == []
    ages = [s.emit_ts - s.ts for s in snaps]
    assert len(ages) == 4, ages
    for age, due in zip(ages, (10, 30, 60, 90), strict=True):
        assert due <= age < due + 1.1  # looked for once a second of packet time
    assert {s.features[3] for s in snaps} == {"S1"}  # established, not yet closed
    # what the client had sent before the packet that moved the clock past each age
    sent = [sum(len(f) - 40 for ts, f in frames if ts < s.emit_ts) for s in snaps]
    assert [s.features[4] for s in snaps] == sent and sent[0] > 0
    ex.finish()
    (final,) = ex.drain()
    assert final.interim == 0 and final.features[3] == "S1"


def test_a_silent_connection_is_snapshotted_at_its_next_packet():
    # Established, one segment, 30 s of silence, one more segment: the snapshot due at 10 s
    # waits for the connection to show something new, then comes once.
    frames = _connection(0.0, 1, 2, 40000, 23, "open", 0.5)
    frames.append((30.0, _frame(1, 2, 40000, 23, 1008, 5001, PSH | ACK, b"hello\r\n")))
    frames.append((31.5, _frame(2, 1, 23, 40000, 5001, 1015, ACK)))
    ex = Extractor(ExtractorConfig(interim=(10.0, 1000.0)))
    snaps = []
    for ts, frame in frames:
        ex.packet(ts, RAW_IPV4, frame)
        snaps += ex.drain_snapshots()
    assert [round(s.emit_ts, 1) for s in snaps] == [31.5]
    assert snaps[0].features[4] == 14  # both segments, the second one's 7 bytes included


def test_no_snapshot_unless_asked():
    ex = Extractor()
    for ts, frame in _connection(0.0, 1, 2, 40000, 23, "open", 100.0):
        ex.packet(ts, RAW_IPV4, frame)
        assert ex.drain_snapshots() == []


@pytest.mark.parametrize("ages", [(0.0,), (60.0, 30.0), tuple(range(1, 10))])
def test_the_kernel_refuses_ages_it_cannot_follow(ages):
    with pytest.raises(ValueError):
        Extractor(ExtractorConfig(interim=ages))
