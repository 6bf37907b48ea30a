"""Robustness: a million random, truncated and mutated packets, and hypothesis-generated
frames, through the decoder and the whole extractor without an exception; every skipped
packet is counted under a known reason."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_extractor.capture_file import open_capture
from feature_extractor.extractor import Extractor
from tests.conftest import PUBLIC

KNOWN_REASONS = {"truncated_link", "unsupported_linktype", "truncated_ip", "bad_ip_header",
                 "other_ip_proto", "truncated_tcp", "bad_tcp_header", "truncated_udp",
                 "bad_udp_header", "truncated_icmp", "other_ethertype", "arp", "rarp", "lldp",
                 "pppoe_discovery", "eapol", "mpls"}
SUPPORTED_LINKTYPES = (0, 1, 12, 14, 101, 108, 113, 228, 229, 276)
SEEDS = ["zeek_wikipedia.pcap", "ndpi_ftp.pcap", "ndpi_dns.pcap", "cs_ip_frag_source.pcapng",
         "ndpi_ip_fragmented_garbage.pcap", "lwerdna_simple_http_sll2.pcap",
         "tcpdump_LINKTYPE_RAW_ipv4.pcap", "wiresharkwiki_teardrop.pcap"]


def seed_frames() -> list[tuple[int, bytes]]:
    frames = []
    for name in SEEDS:
        frames += [(lt, f) for _, lt, f in open_capture(str(PUBLIC / name))]
    return frames


def mutate(rng: random.Random, linktype: int, frame: bytes) -> tuple[int, bytes]:
    choice = rng.random()
    if choice < 0.3:
        return linktype, frame[:rng.randrange(len(frame) + 1)]            # truncated
    if choice < 0.8:
        data = bytearray(frame)
        for _ in range(rng.randrange(1, 6)):                              # bytes flipped
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        return linktype, bytes(data)
    if choice < 0.9:
        return rng.choice(sorted(SUPPORTED_LINKTYPES)), frame             # wrong link type
    return linktype, rng.randbytes(rng.randrange(0, 120))                 # noise


@pytest.mark.slow
def test_a_million_mutated_packets():
    rng = random.Random(20261127)
    frames = seed_frames()
    ex = Extractor()
    ts = 1_700_000_000.0
    for i in range(1_000_000):
        linktype, frame = mutate(rng, *frames[rng.randrange(len(frames))])
        ts += rng.random() * 0.001
        ex.packet(ts, linktype, frame)
        if i % 50_000 == 0:
            ex.drain()
    ex.finish()
    ex.drain()
    assert ex.packets == 1_000_000
    assert set(ex.skipped) <= KNOWN_REASONS, set(ex.skipped) - KNOWN_REASONS
    assert sum(ex.skipped.values()) > 100_000  # the mutations did reach the error paths


@settings(max_examples=3000, deadline=None)
@given(linktype=st.sampled_from([*SUPPORTED_LINKTYPES, 147, 9999]),
       frame=st.binary(max_size=200))
def test_every_frame_is_a_record_a_fragment_or_a_counted_skip(linktype, frame):
    ex = Extractor()
    ex.packet(1_700_000_000.0, linktype, frame)
    ex.finish()
    records = ex.drain()
    assert len(records) + sum(ex.skipped.values()) + ex.fragments.stats["fragments"] == 1
    assert set(ex.skipped) <= KNOWN_REASONS
    for r in records:
        assert len(r.features) == 41 and r.features[4] >= 0 and r.features[5] >= 0


@settings(max_examples=300, deadline=None)
@given(packets=st.lists(st.tuples(st.sampled_from([1, 101, 113, 276, 0]),
                                  st.binary(min_size=0, max_size=120)), max_size=50))
def test_extractor_never_raises(packets):
    ex = Extractor()
    for i, (linktype, frame) in enumerate(packets):
        ex.packet(1_700_000_000.0 + i * 0.3, linktype, frame)
    ex.finish()
    for r in ex.drain():
        assert len(r.features) == 41
