"""Capture files: formats, link types, several files, stdin, and every kind of damage."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest

from feature_extractor import capture_file
from feature_extractor.capture_file import CaptureError, feed_captures, open_capture, read_captures
from feature_extractor.extractor import Extractor
from tests.conftest import PCAPS, PUBLIC, SYNTHETIC, extract_file, shared_pcap

CLI = [sys.executable, "-m", "sensor.cli"]


def run_extract(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "extract", *args], capture_output=True, input=stdin,
                          timeout=120)


@pytest.mark.parametrize("name, linktype", [
    ("lwerdna_simple_http.pcap", 1),          # Ethernet
    ("lwerdna_simple_http_sll2.pcap", 276),   # Linux cooked v2
    ("tcpdump_LINKTYPE_RAW_ipv4.pcap", 101),  # raw IP
    ("ndpi_dns.pcap", 1),                     # pcapng, with VLAN/QinQ/PPPoE frames
])
def test_link_types_decode(name, linktype):
    packets = list(open_capture(str(PUBLIC / name)))
    assert packets and {p[1] for p in packets} == {linktype}
    rows, ex = extract_file(PUBLIC / name)
    assert rows, "every sample holds at least one IP connection"
    assert not ex.skipped, f"nothing skipped: {dict(ex.skipped)}"


@pytest.mark.parametrize("name", ["lwerdna_simple_http.pcap", "lwerdna_simple_http_sll2.pcap"])
def test_ethernet_and_cooked_v2_http_exchanges(name):
    # Two HTTP requests on loopback to an unregistered port (56789 / 8000), both closed by FINs.
    rows, _ = extract_file(PUBLIC / name)
    assert [(r["flag"], r["service"], r["src_ip"]) for r in rows] == [("SF", "other", "127.0.0.1")] * 2
    assert all(r["src_bytes"] > 400 and r["dst_bytes"] >= 200 for r in rows)


def test_vlan_tagged_masscan():
    rows, ex = extract_file(shared_pcap("esnet_masscan_tcp_0_1000.pcap"))
    # 1001 SYNs, all 802.1Q tagged; none skipped, each its own connection.
    assert ex.packets == 1005 and not ex.skipped
    assert len(rows) >= 1000
    assert sum(r["flag"] in ("S0", "REJ", "RSTOS0") for r in rows) >= 995


def test_dns_in_qinq_and_pppoe():
    rows, ex = extract_file(PUBLIC / "ndpi_dns.pcap")
    assert not ex.skipped
    assert all(r["service"] == "domain_u" for r in rows)


def test_bsd_loopback_and_ipv6(tmp_path):
    from scapy.all import DNS, DNSQR, UDP, IPv6, Loopback, wrpcap
    p = Loopback(type=24) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(
        sport=5353, dport=53) / DNS(qd=DNSQR(qname="example.org"))
    p.time = 1_700_000_000
    path = tmp_path / "null.pcap"
    wrpcap(str(path), [p])
    rows, ex = extract_file(path)
    assert [(r["service"], r["src_ip"]) for r in rows] == [("domain_u", "2001:db8::1")]


def test_linux_cooked_v1_and_qinq(tmp_path):
    from scapy.all import IP, TCP, CookedLinux, Dot1AD, Dot1Q, Ether, wrpcap
    sll = CookedLinux(proto=0x0800) / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(
        sport=40000, dport=80, flags="S")
    sll.time = 1_700_000_000
    wrpcap(str(tmp_path / "sll.pcap"), [sll], linktype=113)
    qinq = Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=200) / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(
        sport=40001, dport=21, flags="S")
    qinq.time = 1_700_000_000
    wrpcap(str(tmp_path / "qinq.pcap"), [qinq])
    rows, ex = extract_file(tmp_path / "sll.pcap")
    assert [(r["service"], r["flag"]) for r in rows] == [("http", "S0")] and not ex.skipped
    rows, ex = extract_file(tmp_path / "qinq.pcap")
    assert [(r["service"], r["flag"]) for r in rows] == [("ftp", "S0")] and not ex.skipped


def test_several_files_merge_in_time_order(tmp_path):
    merged = list(read_captures([str(PUBLIC / "zeek_icmp_5-pings.pcap"),
                                 str(PUBLIC / "zeek_http_get.pcap")]))
    times = [p[0] for p in merged]
    assert times == sorted(times) and len(merged) == 10 + 14


@pytest.mark.parametrize("path", [PUBLIC / "ndpi_ftp.pcap", PUBLIC / "ndpi_telnet.pcap",
                                  PUBLIC / "cs_ip_frag_source.pcapng"], ids=lambda p: p.name)
def test_a_read_buffer_smaller_than_the_file_changes_nothing(path, monkeypatch):
    """Records straddle the buffer's end at every offset: each is moved to the front intact."""
    whole = list(open_capture(str(path)))
    one = Extractor()
    feed_captures([str(path)], one.packet, one.feed_pcap)
    one.finish()
    assert max(len(p[2]) for p in whole) + 64 < 3001 < path.stat().st_size // 2
    monkeypatch.setattr(capture_file, "CHUNK", 3001)
    assert list(open_capture(str(path))) == whole
    small = Extractor()
    feed_captures([str(path)], small.packet, small.feed_pcap)
    small.finish()
    assert small.packets == len(whole) and small.drain() == one.drain()


def test_stdin():
    data = (PUBLIC / "zeek_icmp_5-pings.pcap").read_bytes()
    out = run_extract("-", stdin=data)
    assert out.returncode == 0
    assert len(out.stdout.decode().splitlines()) == 10  # one record per ICMP message


@pytest.mark.parametrize("path", [PCAPS / "realtools" / "normal_ftp.pcap",
                                  PUBLIC / "cs_ip_frag_source.pcapng"], ids=lambda p: p.name)
def test_gzip_compressed_captures_give_the_same_records(tmp_path, path):
    packed = tmp_path / (path.name + ".gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert list(read_captures([str(packed)])) == list(read_captures([str(path)]))
    plain, compressed = run_extract(str(path)), run_extract(str(packed))
    assert compressed.returncode == 0 and compressed.stdout == plain.stdout
    piped = run_extract("-", stdin=packed.read_bytes())
    assert piped.stdout == plain.stdout


def test_truncated_gzip_keeps_records_before_the_damage(tmp_path):
    source = PCAPS / "realtools" / "normal_ftp.pcap"
    whole = [p[0] for p in open_capture(str(source))]
    packed = gzip.compress(source.read_bytes())
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[:len(packed) // 2])
    got = []
    with pytest.raises(CaptureError) as err:
        for p in open_capture(str(path)):
            got.append(p[0])
    assert "gzip data cut short" in str(err.value) and str(path) in str(err.value)
    assert 0 < len(got) < len(whole) and got == whole[:len(got)]


def test_output_format_matches_nsl_kdd():
    out = run_extract(str(SYNTHETIC / "windows.pcap"))
    first = out.stdout.decode().splitlines()[0].split(",")
    assert len(first) == 41
    assert first[1:4] == ["icmp", "eco_i", "SF"]
    assert first[24] == "0.00" and first[28] == "1.00"  # rates with two decimals


def test_meta_header():
    out = run_extract("--meta", str(SYNTHETIC / "land.pcap"))
    header, row = out.stdout.decode().splitlines()
    assert header.split(",")[:8] == ["ts", "src_ip", "src_port", "dst_ip", "dst_port", "proto",
                                     "duration", "protocol_type"]
    assert len(header.split(",")) == 47 and len(row.split(",")) == 47
    assert b"packets 1" in out.stderr  # the summary goes to stderr


def test_missing_file():
    out = run_extract("/nonexistent/x.pcap")
    assert out.returncode != 0
    assert out.stderr.decode().strip().splitlines()[0] == \
        "kdd-sensor: error: /nonexistent/x.pcap: No such file or directory"


def test_not_a_capture(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a capture\n")
    out = run_extract(str(bad))
    assert out.returncode != 0
    assert f"{bad}: not a pcap or pcapng file" in out.stderr.decode()


def test_unknown_link_type(tmp_path):
    data = bytearray((PUBLIC / "zeek_icmp_5-pings.pcap").read_bytes())
    data[20:24] = (147).to_bytes(4, "little")  # LINKTYPE_USER0
    path = tmp_path / "user0.pcap"
    path.write_bytes(bytes(data))
    rows, ex = extract_file(path)
    assert not rows and ex.skipped == {"unsupported_linktype": 10}


@pytest.mark.parametrize("cut", [30, 100, 500, 800])
def test_truncated_pcap_keeps_records_before_the_damage(tmp_path, cut):
    src = (PUBLIC / "zeek_icmp_5-pings.pcap").read_bytes()
    whole = [p[0] for p in open_capture(str(PUBLIC / "zeek_icmp_5-pings.pcap"))]
    path = tmp_path / "cut.pcap"
    path.write_bytes(src[:cut])
    got = []
    with pytest.raises(CaptureError) as err:
        for p in open_capture(str(path)):
            got.append(p[0])
    assert "truncated" in str(err.value) and str(path) in str(err.value)
    assert got == whole[:len(got)]
    out = run_extract(str(path))
    assert out.returncode == 1
    assert len(out.stdout.decode().splitlines()) == len(got)  # every record before the cut
    assert "truncated" in out.stderr.decode()


def test_truncated_pcapng_keeps_records_before_the_damage(tmp_path):
    src = (PUBLIC / "cs_ip_frag_source.pcapng").read_bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(src[:-100])
    out = run_extract(str(path))
    assert out.returncode == 1 and "truncated pcapng block" in out.stderr.decode()
    assert len(out.stdout.decode().splitlines()) == 1  # the first ping, reassembled


def test_corrupt_record_length(tmp_path):
    data = bytearray((PUBLIC / "zeek_icmp_5-pings.pcap").read_bytes())
    data[24 + 8:24 + 12] = (10_000_000).to_bytes(4, "little")
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    out = run_extract(str(path))
    assert out.returncode == 1 and "corrupt packet record" in out.stderr.decode()
