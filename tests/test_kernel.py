"""The compiled path against Python's own behaviour: CSV rows formatted as Python formats them,
classic pcap buffers giving the same records as packet-by-packet input, and pcap_cnt."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_extractor.capture_file import feed_captures, read_captures
from feature_extractor.content import ANALYZERS, FtpAnalyzer, HttpAnalyzer
from feature_extractor.extractor import Extractor
from feature_extractor.record import FEATURE_NAMES, format_features
from tests.conftest import PCAPS

CAPTURES = sorted(p for p in PCAPS.rglob("*.pcap*") if p.suffix in (".pcap", ".pcapng"))


def _ipv4_icmp(src: int, dst: int, icmp_type: int) -> bytes:
    icmp = bytes([icmp_type, 0, 0, 0, 0, 1, 0, 1]) + b"x" * 20
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0,
                     bytes([10, 0, 0, src]), bytes([10, 0, 0, dst]))
    return ip + icmp


def _run(frames: list[tuple[float, bytes]], csv: bool):
    ex = Extractor()
    for ts, frame in frames:
        ex.packet(ts, 101, frame)  # raw IPv4
    ex.finish()
    return ex.drain_csv(False) if csv else ex.drain()


@pytest.mark.parametrize(("echo_requests", "same", "diff"), [(1, "0.12", "0.25"),
                                                            (3, "0.38", "0.25")])
def test_rates_round_half_to_even_like_python(echo_requests, same, diff):
    # Eight ICMP messages to one host within 2 s, the last an echo request (eco_i) and
    # `echo_requests` of the eight too: its same_srv_rate is echo_requests/8, an exact binary
    # tie (12.5, 37.5 hundredths) that Python's '%.2f' and NSL-KDD round to even. Two
    # services (eco_i, ecr_i) in eight: diff_srv_rate 2/8.
    frames = []
    for i in range(8):
        icmp_type = 8 if i >= 8 - echo_requests else 0
        frames.append((1_700_000_000.0 + i * 0.1, _ipv4_icmp(1 + i, 200, icmp_type)))
    rows = _run(frames, csv=True).splitlines()
    assert rows == [format_features(r.features) for r in _run(frames, csv=False)]
    last = rows[-1].split(",")
    assert last[22] == "8"                                # count
    assert last[28:30] == [same, diff]                    # same_srv_rate, diff_srv_rate
    assert last[31] == "8" and last[33:35] == [same, diff]  # the host window agrees


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_csv_rows_equal_python_formatting(path):
    def run(csv: bool):
        ex = Extractor()
        for ts, linktype, frame in read_captures([str(path)]):
            ex.packet(ts, linktype, frame)
        ex.finish()
        return ex.drain_csv(False).splitlines() if csv else ex.drain()

    assert run(True) == [format_features(r.features) for r in run(False)]


@pytest.mark.parametrize("path", [p for p in CAPTURES if p.suffix == ".pcap"],
                         ids=lambda p: p.name)
def test_pcap_buffers_give_the_records_of_packet_by_packet_input(path):
    one = Extractor()
    for ts, linktype, frame in read_captures([str(path)]):
        one.packet(ts, linktype, frame)
    one.finish()
    blocks = Extractor()
    feed_captures([str(path)], blocks.packet, blocks.feed_pcap)
    blocks.finish()
    assert blocks.packets == one.packets
    assert blocks.drain() == one.drain()
    assert blocks.skipped == one.skipped
    assert blocks.fragments.stats == one.fragments.stats


def test_emit_packet_counts_the_packet_that_decided_the_record():
    frames = [(1_700_000_000.0 + i, _ipv4_icmp(1, 2, 8)) for i in range(3)]
    records = _run(frames, csv=False)
    assert [r.emit_packet for r in records] == [1, 2, 3]  # one record per ICMP message


def test_a_libpcap_batch_gives_the_records_of_packet_by_packet_input():
    # pcapy-ng's next_batch layout: one buffer, a table of native uint32 (sec, usec, off, len).
    packets = list(read_captures([str(PCAPS / "synthetic" / "frag_inorder.pcap"),
                                  str(PCAPS / "realtools" / "normal_ftp.pcap")]))
    data, meta = bytearray(), bytearray()
    for ts, _, frame in packets:
        sec = int(ts)
        meta += struct.pack("=IIII", sec, round((ts - sec) * 1e6), len(data), len(frame))
        data += frame
    one = Extractor()
    for ts, linktype, frame in packets:
        one.packet(float(int(ts)) + round((ts - int(ts)) * 1e6) * 1e-6, linktype, frame)
    one.finish()
    batch = Extractor()
    batch.feed_batch(bytes(data), bytes(meta), 1)
    batch.finish()
    assert batch.fragments.stats["reassembled"] == one.fragments.stats["reassembled"] == 1
    assert batch.drain() == one.drain()


def test_a_batch_table_pointing_outside_its_buffer_is_an_error():
    with pytest.raises(ValueError, match="outside the buffer"):
        Extractor().feed_batch(b"\x00" * 10, struct.pack("=IIII", 1, 0, 4, 20), 1)


LINE_MODE = [cls for cls in set(ANALYZERS.values()) if cls.line_prefixes is not None]
NEEDLED = [cls for cls in LINE_MODE if cls.line_needles != (None, None)]


def _declared(cls, from_orig: bool):
    """The prefixes of the lines the kernel acts on in one direction (None: every line)."""
    side = 0 if from_orig else 1
    prefixes = cls.line_prefixes[side]
    return None if prefixes is None else (*prefixes, *(r[0] for r in cls.line_counts[side]))


@pytest.mark.parametrize("cls", LINE_MODE, ids=lambda c: c.__name__)
@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.tuples(st.booleans(), st.binary(max_size=40)), max_size=12))
def test_lines_outside_the_declared_prefixes_change_nothing(cls, lines):
    # The kernel looks only at lines starting with the declared prefixes (for line() or
    # counted); through the reference path (data(), every line) the others must not matter.
    analyzer, reference = cls(), cls()
    for from_orig, text in lines:
        prefixes = _declared(cls, from_orig)
        if prefixes is None or text.startswith(prefixes):
            continue
        analyzer.data(from_orig, text.replace(b"\n", b" ") + b"\r\n")
    assert analyzer.result() == reference.result()


# Pieces of ordinary request and FTP command lines, and one instance of each alternative of
# the HTTP and FTP rules (written from the patterns, not from the needles).
RULE_PIECES = [b"GET ", b"POST ", b"/", b".", b"-", b"%", b"index.html", b"?q=", b"&", b" ",
               b"1", b"HTTP/1.1", b"/" * 100, b"/cgi-bin/test", b"/scripts/x", b"a.cgi",
               b"a.pl", b"A.EXE", b"a.dll", b"a.bat", b"a.sh", b"/phf", b"/etc/", b"/bin/ls",
               b"passwd", b"cmd.exe", b"../", b"%2E%2e", b"/proc/self", b"union select",
               b"UNION%20SELECT", b"union+select", b"union/**/select", b"<script", b"%3CSCRIPT",
               b"' or '1", b"'or 1", b"; cat", b";ls", b"; id", b";wget", b"; curl",
               b"${jndi:", b".rhosts", b".ssh/", b"/etc/passwd",
               b"USER ", b"PASS ", b"STOR ", b"stou ", b"APPE ", b"MKD ", b"XMKD ", b"SITE ",
               b"CWD ", b"RETR ", b"root", b"anonymous", b"etc", b"bin", b"usr", b"=", b'"',
               b".netrc", b"authorized_keys", b".forward", b".login", b".cshrc", b".profile",
               b".bashrc", b"PORT ", b"10,200,0,1,128,7", b"EPRT ", b"|1|10.200.0.1|32775|",
               b"|2|::1|5282|"]


@pytest.mark.parametrize("cls", NEEDLED, ids=lambda c: c.__name__)
@settings(max_examples=3000, deadline=None)
@given(data=st.data(), pieces=st.lists(st.sampled_from(RULE_PIECES), max_size=12))
def test_lines_without_a_declared_needle_change_nothing(cls, data, pieces):
    # The kernel hands line() only lines holding one of the needles (case ignored).
    side = data.draw(st.sampled_from([s for s in (0, 1) if cls.line_needles[s] is not None]))
    prefixes = cls.line_prefixes[side]
    start = data.draw(st.sampled_from(prefixes)) + b" " if prefixes else b""
    line = start + b"".join(pieces)
    if any(n in line.lower() for n in cls.line_needles[side]):
        return
    analyzer, reference = cls(), cls()
    analyzer.line(side == 0, line, complete=True)
    for a in (analyzer, reference):  # what the line left in the state shows in the replies
        for reply in cls.line_prefixes[1 - side] or ():
            a.line(side == 1, reply.strip() + b" ok", complete=True)
    assert analyzer.result() == reference.result()
    assert getattr(analyzer, "expected", None) == getattr(reference, "expected", None)


def _tcp_session(client_says: bytes) -> list[tuple[float, bytes]]:
    """Raw IPv4 frames of a TCP session to port 80 in which the client sends one segment."""
    def frame(src, dst, sport, dport, seq, ack, flags, payload=b""):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 1, 0, 64, 6, 0,
                         bytes([10, 0, 0, src]), bytes([10, 0, 0, dst]))
        return ip + tcp + payload
    c, s = (1, 2, 40000, 80), (2, 1, 80, 40000)
    n = len(client_says)
    return [(0.0, frame(*c, 100, 0, 0x02)), (0.1, frame(*s, 500, 101, 0x12)),
            (0.2, frame(*c, 101, 501, 0x10)), (0.3, frame(*c, 101, 501, 0x18, client_says)),
            (0.4, frame(*c, 101 + n, 501, 0x11)), (0.5, frame(*s, 501, 102 + n, 0x11)),
            (0.6, frame(*c, 102 + n, 502, 0x10))]


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(RULE_PIECES), min_size=1, max_size=16))
def test_the_kernel_finds_needles_as_python_does(pieces):
    """A client line reaches line() through the kernel exactly when it holds a needle."""
    request = b"GET " + b"".join(pieces).replace(b"\n", b"")
    seen = []
    cls = HttpAnalyzer
    probe = type("Probe", (cls,), {"line": lambda self, o, line, c: seen.append(line)})
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ANALYZERS, "http", probe)
        ex = Extractor()
    for ts, frame in _tcp_session(request + b"\r\n"):
        ex.packet(ts, 101, frame)
    ex.finish()
    assert ex.drain()[0].features[2] == "http"
    assert seen == ([request] if any(n in request.lower() for n in cls.line_needles[0]) else [])


@pytest.mark.parametrize("path", [PCAPS / "synthetic" / "content.pcap",
                                  PCAPS / "realtools" / "normal_web.pcap",
                                  PCAPS / "realtools" / "normal_smtp.pcap",
                                  PCAPS / "public" / "zeek_http_get.pcap",
                                  PCAPS / "public" / "zeek_smtp.pcap",
                                  PCAPS / "public" / "ndpi_WebattackRCE.pcap",
                                  PCAPS / "public" / "ndpi_WebattackSQLinj.pcap",
                                  PCAPS / "public" / "ndpi_xss.pcap",
                                  PCAPS / "public" / "cs_http_dvwa_sqlinjection.pcapng"],
                         ids=lambda p: p.name)
def test_line_mode_gives_what_every_segment_through_data_gives(path, monkeypatch):
    def records():
        ex = Extractor()
        feed_captures([str(path)], ex.packet, ex.feed_pcap)
        ex.finish()
        return ex.drain()

    line_mode = records()
    for name, cls in ANALYZERS.items():
        if cls.line_prefixes is not None and cls is not FtpAnalyzer:  # FTP is always by line
            monkeypatch.setitem(ANALYZERS, name, type(cls.__name__, (cls,), {"line_prefixes": None}))
    assert records() == line_mode


@pytest.mark.parametrize(("endian", "nano"), [(">", False), ("<", True), (">", True)])
def test_big_endian_and_nanosecond_pcaps_give_the_same_records(tmp_path, endian, nano):
    packets = list(read_captures([str(PCAPS / "realtools" / "normal_ftp.pcap")]))
    path = tmp_path / "variant.pcap"
    with path.open("wb") as fh:
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        fh.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1))
        for ts, _, frame in packets:
            sec = int(ts)
            frac = round((ts - sec) * (1e9 if nano else 1e6))
            fh.write(struct.pack(endian + "IIII", sec, frac, len(frame), len(frame)) + frame)

    def records(feed: bool):
        ex = Extractor()
        if feed:
            feed_captures([str(path)], ex.packet, ex.feed_pcap)
        else:
            for ts, linktype, frame in read_captures([str(path)]):
                ex.packet(ts, linktype, frame)
        ex.finish()
        return [(round(r.ts, 6), r.features) for r in ex.drain()]

    original = [(round(r.ts, 6), r.features) for r in _records_of(packets)]
    assert records(feed=True) == records(feed=False) == original


def _records_of(packets):
    ex = Extractor()
    for ts, linktype, frame in packets:
        ex.packet(ts, linktype, frame)
    ex.finish()
    return ex.drain()


def _mirrored(proto: int, payload: bytes) -> bytes:
    """A mirroring switch's packet: Ethernet and IPv4, 192.0.2.250 to the sensor's .251."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                     bytes((192, 0, 2, 250)), bytes((192, 0, 2, 251)))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + payload


SEQUENCE = b"\x00\x00\x01\x00"
TUNNELS = {  # name: the mirrored packet carrying one Ethernet frame
    "vxlan": lambda f: _mirrored(17, struct.pack("!HHHH", 50000, 4789, 16 + len(f), 0)
                                 + b"\x08\x00\x00\x00\x00\x00\x2a\x00" + f),
    "gre_ethernet": lambda f: _mirrored(47, b"\x00\x00\x65\x58" + f),
    "gre_ip_checksum_key": lambda f: _mirrored(47, b"\xa0\x00\x08\x00" + b"\x00" * 4
                                               + b"\x00\x00\x00\x07" + f[14:]),
    "erspan_1": lambda f: _mirrored(47, b"\x00\x00\x88\xbe" + f),
    "erspan_2": lambda f: _mirrored(47, b"\x10\x00\x88\xbe" + SEQUENCE
                                    + b"\x10\x00\x00\x05\x00\x00\x00\x00" + f),
    "erspan_3_subheader": lambda f: _mirrored(47, b"\x10\x00\x22\xeb" + SEQUENCE
                                              + b"\x20\x00\x00\x05" + b"\x00" * 7 + b"\x01"
                                              + b"\x00" * 8 + f),
    # a provider's link: two labels (16, then 17 at the bottom of the stack) before the IP
    # packet, or one label and a pseudowire's control word before the customer's Ethernet
    "mpls": lambda f: f[:12] + b"\x88\x47" + _label(16, False) + _label(17, True) + f[14:],
    "mpls_pseudowire": lambda f: (b"\x06" * 6 + b"\x08" * 6 + b"\x88\x47" + _label(99, True)
                                  + b"\x00" * 4 + f),
}


def _label(label: int, bottom: bool) -> bytes:
    return struct.pack("!I", label << 12 | bottom << 8 | 64)


@pytest.mark.parametrize("tunnel", TUNNELS)
def test_tunnelled_mirror_traffic_gives_the_plain_captures_records(tunnel):
    packets = list(read_captures([str(PCAPS / "realtools" / "normal_web.pcap")]))
    assert {linktype for _, linktype, _ in packets} == {1}
    wrapped = [(ts, 1, TUNNELS[tunnel](frame)) for ts, _, frame in packets]

    def view(records):
        return [(r.ts, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.features) for r in records]

    ex = Extractor()
    for ts, linktype, frame in wrapped:
        ex.packet(ts, linktype, frame)
    ex.finish()
    plain = view(_records_of(packets))
    assert plain and view(ex.drain()) == plain
    kind = next(k for k in ("vxlan", "erspan", "mpls", "gre") if k in tunnel)
    assert ex.tunnelled == {kind: len(packets)}  # counted for the operator's stats


def test_the_end_of_a_capture_finishes_connections_at_their_timeouts():
    """snmpwalk and snmpget 3 s apart: each UDP exchange finishes 10 s after its last packet,
    as a sensor left running would finish it, not all at the capture's last packet."""
    packets = list(read_captures([str(PCAPS / "realtools" / "normal_snmp.pcap")]))

    def snmp(as_timeouts: bool):
        ex = Extractor()
        for ts, linktype, frame in packets:
            ex.packet(ts, linktype, frame)
        ex.finish(as_timeouts)
        return [r for r in ex.drain() if r.dst_port == 161]

    at_timeouts, now = snmp(True), snmp(False)
    assert len(at_timeouts) == len(now) == 6
    # at the due time, on the 0.1 s sweep
    assert all(0 <= r.emit_ts - (r.last_ts + 10.0) <= 0.1 + 1e-6 for r in at_timeouts)
    assert {r.emit_ts for r in now} == {packets[-1][0]}
    count = FEATURE_NAMES.index("count")
    assert [r.features[count] for r in at_timeouts] == [1, 2] * 3  # pairs 3 s apart
    assert [r.features[count] for r in now] == [1, 2, 3, 4, 5, 6]  # one window for all


def test_an_mpls_stack_without_ip_or_ethernet_under_it_is_counted_and_skipped():
    frame = next(f for _, _, f in read_captures([str(PCAPS / "realtools" / "normal_web.pcap")]))
    labels = frame[:12] + b"\x88\x47" + _label(16, False)
    ex = Extractor()
    ex.packet(0.0, 1, labels + _label(17, True) + b"\x5f" + frame[15:])  # not IP nor a PW
    ex.packet(0.1, 1, labels + _label(17, False) * 20 + frame[14:])    # no bottom of stack
    ex.packet(0.2, 1, labels)                                           # cut in the stack
    assert ex.skipped == {"mpls": 2, "truncated_link": 1}
    assert not ex.tunnelled


def test_a_packet_stamped_back_in_time_moves_no_connection_back():
    """Merged captures and stepped clocks put packets out of time order; a connection's
    duration stays what its in-order packets make it, never negative."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    packets = list(read_captures([str(PCAPS / "realtools" / "normal_telnet.pcap")]))
    plain = _records_of(packets)
    seen, stepped = set(), []
    for i, (ts, linktype, frame) in enumerate(packets):
        pkt = Ether(frame)
        if TCP in pkt:
            flow = frozenset(((pkt[IP].src, pkt[TCP].sport), (pkt[IP].dst, pkt[TCP].dport)))
            if flow in seen and i % 3 == 0:
                ts -= 3600  # not a connection's first packet
            seen.add(flow)
        stepped.append((ts, linktype, frame))
    assert sum(a[0] != b[0] for a, b in zip(stepped, packets, strict=True)) > 10
    got = _records_of(stepped)
    assert any(r.features[0] > 0 for r in plain)
    assert [(r.src_port, r.features[0]) for r in got] == [(r.src_port, r.features[0])
                                                          for r in plain]


def test_a_segment_with_ip_length_zero_is_read_to_the_frames_end():
    """Captures taken on the sending host carry TSO super-segments whose IPv4 total length
    is 0 (Zeek reads them to the frame's end, and so do we)."""
    from scapy.layers.inet import IP, TCP

    def frame(flags, payload=b"", seq=1000, length=None, **ip):
        pkt = IP(src="192.0.2.1", dst="192.0.2.2", **ip) / TCP(sport=40000, dport=80, flags=flags,
                                                                 seq=seq) / payload
        raw = bytearray(bytes(pkt))
        if length is not None:
            raw[2:4] = length.to_bytes(2, "big")
        return bytes(raw)

    big = b"x" * 9000
    ex = Extractor()
    for i, raw in enumerate((frame("S", seq=999), frame("PA", big, length=0),
                             frame("FA", seq=1000 + len(big)))):
        ex.packet(1_700_000_000.0 + i * 0.01, 228, raw)                # LINKTYPE_IPV4
    ex.finish()
    (record,) = ex.drain()
    assert record.features[4] == 9000 and not ex.skipped             # src_bytes


def test_ipv6_extension_headers_and_fragments():
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.inet6 import (
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        fragment6,
    )
    syn = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / \
        IPv6ExtHdrDestOpt() / TCP(sport=40000, dport=80, flags="S")
    big = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment() / \
        UDP(sport=40001, dport=53) / (b"q" * 3000)
    pieces = fragment6(big, 1280)
    assert len(pieces) == 3
    ex = Extractor()
    ex.packet(1_700_000_000.0, 229, bytes(syn))                      # LINKTYPE_IPV6
    for i, piece in enumerate(reversed(pieces)):                     # in reverse order
        ex.packet(1_700_000_000.1 + i * 0.01, 229, bytes(piece))
    ex.finish()
    by_service = {r.features[2]: r for r in ex.drain()}
    assert by_service["http"].features[3] == "S0" and by_service["http"].dst_ip == "2001:db8::2"
    dns = by_service["domain_u"]
    assert dns.features[4] == 3000 and dns.features[7] == 0           # src_bytes, wrong_fragment
    assert ex.fragments.stats["reassembled"] == 1 and not ex.skipped


def _udp_datagram(dst: bytes) -> bytes:
    """NetBIOS datagram service, 192.0.2.7 to `dst`."""
    udp = struct.pack("!HHHH", 138, 138, 8 + 20, 0) + b"x" * 20
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                       bytes((192, 0, 2, 7)), dst) + udp


BROADCAST_MAC, HOST_MAC = b"\xff" * 6, b"\x02\x00\x00\x00\x00\x09"
SUBNET_BROADCAST = bytes((192, 0, 2, 255))


@pytest.mark.parametrize(("linktype", "frame", "marked"), [
    (1, BROADCAST_MAC + HOST_MAC + b"\x08\x00" + _udp_datagram(SUBNET_BROADCAST), 1),
    (1, HOST_MAC + HOST_MAC + b"\x08\x00" + _udp_datagram(SUBNET_BROADCAST), 0),
    # Linux SLL: packet type 1 is "sent to us by someone else as a broadcast"
    (113, struct.pack("!HHH8sH", 1, 1, 6, HOST_MAC + b"\0\0", 0x0800)
     + _udp_datagram(SUBNET_BROADCAST), 1),
    (113, struct.pack("!HHH8sH", 0, 1, 6, HOST_MAC + b"\0\0", 0x0800)
     + _udp_datagram(SUBNET_BROADCAST), 0),
    # SLL2: protocol, reserved, interface, ARPHRD, packet type at byte 10
    (276, struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 1, 6, HOST_MAC + b"\0\0")
     + _udp_datagram(SUBNET_BROADCAST), 1),
    (101, _udp_datagram(SUBNET_BROADCAST), 0),  # raw IP: no link layer to tell
], ids=["ethernet_broadcast", "ethernet_unicast", "sll_broadcast", "sll_host", "sll2_broadcast",
        "raw_ip"])
def test_a_datagram_to_the_link_broadcast_is_marked(linktype, frame, marked):
    (record,) = _records_of([(1.0, linktype, frame)])
    assert (record.dst_ip, record.features[2]) == ("192.0.2.255", "private")
    assert record.link_broadcast == marked
