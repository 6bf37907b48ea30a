"""Hand-computed features for the synthetic captures (pcaps/generate.py builds them).

Each expected value comes from the rule in docs/features.md applied by hand to the packets the
generator writes; the comment says why.
"""

from __future__ import annotations

import functools
import struct

import numpy as np
import pytest

from feature_extractor.capture_file import read_captures
from feature_extractor.extractor import Extractor
from feature_extractor.record import FEATURE_NAMES, FLAGS, REJ_ERROR_FLAGS, SYN_ERROR_FLAGS
from models import data
from tests.conftest import SYNTHETIC, extract_file


def by_port(rows: list[dict], key: str = "dst_port") -> dict:
    return {r[key]: r for r in rows}


def test_all_thirteen_flags():
    rows, _ = extract_file(SYNTHETIC / "flags.pcap")
    flags = {port: r["flag"] for port, r in by_port(rows).items()}
    # Port 1000+i carries scenario i of flags_capture(), each a Zeek conn_state by definition.
    assert flags == {
        1001: "S0",      # SYN, nothing back
        1002: "REJ",     # SYN answered by RST
        1003: "SF",      # handshake, data, FIN both ways
        1004: "S1",      # established, never closed
        1005: "S2",      # established, only the originator's FIN
        1006: "S3",      # established, only the responder's FIN
        1007: "RSTO",    # established, originator RST
        1008: "RSTR",    # established, responder RST
        1009: "RSTOS0",  # SYN then originator RST, no SYN-ACK
        1010: "RSTRH",   # SYN-ACK then responder RST, no SYN seen
        1011: "SH",      # SYN then originator FIN, no SYN-ACK
        1012: "SHR",     # SYN-ACK then responder FIN, no SYN seen
        1013: "OTH",     # midstream data, no SYN or FIN
    }
    for r in rows:
        assert r["src_ip"] == "192.0.2.10", "originator is the SYN sender, or SYN-ACK receiver"
        assert r["service"] == "private"  # unknown ports below 1024


def _error_bits_in_nsl_kdd() -> dict[str, tuple[float, float]]:
    """(serror_rate, rerror_rate) per flag over NSL-KDD rows whose 2 s window holds only
    themselves (count 1): there a rate is the row's own flag counted as an error or not."""
    seen: dict[str, set] = {}
    with data.open_text(data.TRAIN) as fh:
        for line in fh:
            row = line.split(",")
            if row[22] == "1":
                seen.setdefault(row[3], set()).add((float(row[24]), float(row[26])))
    assert all(len(v) == 1 for v in seen.values()), seen  # one answer per flag
    return {flag: v.pop() for flag, v in seen.items()}


def test_syn_and_rej_errors_are_nsl_kdds():
    in_data = _error_bits_in_nsl_kdd()
    # The two flags NSL-KDD never shows take their mirror images' answer [choice].
    in_data |= {"RSTRH": in_data["RSTOS0"], "SHR": in_data["SH"]}
    assert in_data["RSTO"] == (0.0, 1.0)  # not only REJ: every reset is a "REJ error"
    expected = {flag: (float(flag in SYN_ERROR_FLAGS), float(flag in REJ_ERROR_FLAGS))
                for flag in FLAGS}
    assert expected == in_data  # the table models.cold_start uses is the data's
    packets = list(read_captures([str(SYNTHETIC / "flags.pcap")]))
    records = {}
    for port in range(1001, 1014):
        ex = Extractor()  # each scenario alone (Ethernet, IPv4 without options): no neighbours
        for ts, linktype, frame in packets:
            if struct.unpack("!H", frame[36:38])[0] in (port, port + 39000):
                ex.packet(ts, linktype, frame)
        ex.finish()
        (r,) = ex.drain()
        records[r.features[3]] = dict(zip(FEATURE_NAMES, r.features, strict=True))
    assert set(records) == set(expected)
    for flag, (serror, rerror) in expected.items():
        row = records[flag]
        assert row["count"] == row["dst_host_count"] == 1, flag
        assert (row["serror_rate"], row["rerror_rate"]) == (serror, rerror), flag
        assert (row["srv_serror_rate"], row["srv_rerror_rate"]) == (serror, rerror), flag
        assert (row["dst_host_serror_rate"], row["dst_host_rerror_rate"]) == (serror, rerror)
        assert (row["dst_host_srv_serror_rate"], row["dst_host_srv_rerror_rate"]) == (serror,
                                                                                      rerror)


def test_flag_bytes_are_payload_bytes():
    rows = by_port(extract_file(SYNTHETIC / "flags.pcap")[0])
    assert (rows[1001]["src_bytes"], rows[1001]["dst_bytes"]) == (0, 0)  # a SYN carries no data
    assert (rows[1003]["src_bytes"], rows[1003]["dst_bytes"]) == (5, 6)  # b"hello", b"world!"
    assert (rows[1013]["src_bytes"], rows[1013]["dst_bytes"]) == (13, 5)  # "midstream"+"more"


def test_retransmission_counts_once():
    (row,), _ = extract_file(SYNTHETIC / "bytes.pcap")
    # 100 bytes, the same 100 again (retransmitted), then 50: sequence space covers 150.
    assert (row["src_bytes"], row["dst_bytes"]) == (150, 300)
    assert (row["service"], row["flag"]) == ("http", "SF")


@pytest.mark.parametrize("name", ["frag_inorder.pcap", "frag_reversed.pcap"])
def test_fragments_reassembled_in_any_order(name):
    (row,), ex = extract_file(SYNTHETIC / name)
    # One 3000-byte UDP payload cut into three fragments; reassembled, nothing wrong.
    assert (row["protocol_type"], row["src_bytes"], row["wrong_fragment"]) == ("udp", 3000, 0)
    assert ex.fragments.stats["reassembled"] == 1


def test_teardrop_overlap():
    (row,), ex = extract_file(SYNTHETIC / "frag_overlap.pcap")
    # Second fragment (offset 24, 4 bytes) lies inside the first (36 bytes): overlap scores 3 as
    # NSL-KDD's teardrop rows show; the UDP length field says 36, so 28 payload bytes.
    assert (row["service"], row["src_bytes"], row["wrong_fragment"]) == ("private", 28, 3)
    assert ex.fragments.stats["bad_fragments"] == 1


def test_ping_of_death_oversize():
    (row,), _ = extract_file(SYNTHETIC / "frag_oversize.pcap")
    # 46 fragments of 1480 bytes reach 68,080 bytes, past 65,535: scored 1, reported from the
    # first fragment (ICMP message of 1480 bytes), as the data's pod rows show.
    assert (row["service"], row["src_bytes"], row["wrong_fragment"]) == ("eco_i", 1480, 1)


def test_land():
    (row,), _ = extract_file(SYNTHETIC / "land.pcap")
    # Same address and port on both ends; finger port, lone SYN.
    assert (row["land"], row["service"], row["flag"]) == (1, "finger", "S0")


def test_urgent_counts_urg_packets():
    (row,), _ = extract_file(SYNTHETIC / "urgent.pcap")
    assert row["urgent"] == 2  # two segments with URG set
    assert (row["src_bytes"], row["service"]) == (2, "telnet")


def test_two_second_and_host_windows():
    rows, _ = extract_file(SYNTHETIC / "windows.pcap")
    t = {round(r["ts"] - rows[0]["ts"], 1): r for r in rows}
    # Echo requests to S(erver) at 0.0, 0.5, 2.2, 2.6, 4.5 and to O(ther) at 1.0; a REJ to S:80
    # at 3.0 (RST at 3.01) and a lone SYN to S:81 at 3.3, finished when their 1 s timeouts fall
    # due (4.01 and 4.3), as a live sensor's clock finishes them, not at the next packet (4.5).
    assert (t[0.0]["count"], t[0.0]["srv_count"]) == (1, 1)   # counts itself
    assert (t[0.5]["count"], t[0.5]["srv_count"]) == (2, 2)
    o = t[1.0]
    assert (o["count"], o["srv_count"]) == (1, 3)              # only echo to O; 3 echoes
    assert o["srv_diff_host_rate"] == pytest.approx(2 / 3)     # two hosts (S, O) in 3 echoes
    assert (t[2.2]["count"], t[2.2]["srv_count"]) == (2, 3)    # 0.0 evicted (older than 2 s)
    assert (t[2.6]["count"], t[2.6]["srv_count"]) == (2, 3)    # 0.5 evicted too
    rej = t[3.0]
    assert rej["emit_ts"] - rows[0]["ts"] == pytest.approx(4.01)
    # In the 2 s before 4.01: echoes 2.2 and 2.6, itself.
    assert (rej["flag"], rej["service"], rej["count"], rej["srv_count"]) == ("REJ", "http", 3, 1)
    assert (rej["rerror_rate"], rej["srv_rerror_rate"]) == (pytest.approx(1 / 3), 1.0)
    assert rej["same_srv_rate"] == pytest.approx(1 / 3)
    assert rej["diff_srv_rate"] == pytest.approx(2 / 3)  # echo and http: 2 services in 3
    s0 = t[3.3]
    # In the 2 s before 4.3: echo 2.6, the REJ, itself.
    assert (s0["flag"], s0["service"], s0["count"]) == ("S0", "private", 3)
    assert s0["serror_rate"] == pytest.approx(1 / 3) and s0["rerror_rate"] == pytest.approx(1 / 3)
    assert s0["diff_srv_rate"] == 1.0  # echo, http, port 81
    last = t[4.5]
    # In the 2 s before 4.5: echo 2.6, REJ, S0, itself -> 4 to S, 2 of them echoes.
    assert (last["count"], last["srv_count"]) == (4, 2)
    assert (last["serror_rate"], last["rerror_rate"], last["same_srv_rate"]) == (0.25, 0.25, 0.5)
    assert last["diff_srv_rate"] == 0.75  # echo, http, port 81: 3 services in 4 connections
    # Host window: all 7 connections to S; service window: all 6 echoes (one to O).
    assert (last["dst_host_count"], last["dst_host_srv_count"]) == (7, 6)
    assert last["dst_host_same_srv_rate"] == pytest.approx(5 / 7)
    assert last["dst_host_diff_srv_rate"] == pytest.approx(3 / 7)  # echo, http, port 81
    assert last["dst_host_same_src_port_rate"] == pytest.approx(5 / 7)  # echo "port" = type 8
    assert last["dst_host_srv_diff_host_rate"] == pytest.approx(2 / 6)  # S and O
    assert last["dst_host_serror_rate"] == pytest.approx(1 / 7)
    assert last["dst_host_rerror_rate"] == pytest.approx(1 / 7)
    assert (last["dst_host_srv_serror_rate"], last["dst_host_srv_rerror_rate"]) == (0, 0)


def test_count_caps():
    rows, _ = extract_file(SYNTHETIC / "caps.pcap")
    # 600 echoes to one host, 2 ms apart: all within 2 s, so the true count reaches 600.
    assert len(rows) == 600
    assert (rows[510]["count"], rows[511]["count"], rows[-1]["count"]) == (511, 511, 511)
    assert rows[-1]["srv_count"] == 511
    assert (rows[254]["dst_host_count"], rows[-1]["dst_host_count"]) == (255, 255)
    assert rows[253]["dst_host_count"] == 254
    assert rows[-1]["dst_host_srv_count"] == 255


CONTENT_FIELDS = ("hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell",
                  "su_attempted", "num_root", "num_file_creations", "num_shells",
                  "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login")


def content(row: dict) -> dict:
    return {k: row[k] for k in CONTENT_FIELDS if row[k]}


def test_content_features():
    rows = by_port(extract_file(SYNTHETIC / "content.pcap")[0], key="src_port")
    # telnet: login as alice, `touch notes.txt` (file creation), `cat /etc/passwd` (access file),
    # `cd /etc` (entering a system directory: hot), `su -` (su attempt), root prompt (root
    # shell), `/bin/sh` as root (a shell, a root command), `exit` as root (a root command).
    assert content(rows[43001]) == {"logged_in": 1, "num_file_creations": 1,
                                    "num_access_files": 1, "hot": 1, "su_attempted": 1,
                                    "root_shell": 1, "num_shells": 1, "num_root": 2}
    assert content(rows[43002]) == {"num_failed_logins": 1}        # "Login incorrect"
    assert content(rows[43003]) == {"logged_in": 1, "is_guest_login": 1}  # anonymous, 230
    assert content(rows[43004]) == {"num_failed_logins": 1}        # 530
    assert content(rows[43005]) == {"logged_in": 1, "num_file_creations": 1, "hot": 1}  # STOR
    assert content(rows[43006]) == {"logged_in": 1}                # POP3: the server spoke
    assert content(rows[43007]) == {"logged_in": 1}                # even to refuse the password
    assert content(rows[43008]) == {"logged_in": 1}                # 250 to HELO
    assert content(rows[43009]) == {"logged_in": 1}                # answered request
    # phf: a CGI script (hot) reaching /bin and /etc/passwd (hot, an access file).
    assert content(rows[43010]) == {"logged_in": 1, "hot": 2, "num_access_files": 1}
    assert all(r["num_outbound_cmds"] == 0 for r in rows.values())  # 0 in every NSL-KDD row
    # Refusals outside telnet and FTP are not failed logins (test_failed_logins_are_...).
    assert content(rows[43011]) == {"logged_in": 1}                # HTTP 401: answered
    assert content(rows[43012]) == {}                              # SMTP 535, no 250
    assert content(rows[43013]) == {}                              # IMAP NO to LOGIN
    assert content(rows[43014]) == {"logged_in": 1}                # IMAP OK to LOGIN
    assert content(rows[43015]) == {"logged_in": 1}                # SSH: a banner
    assert content(rows[43016]) == {"logged_in": 1}                # POP3 greeting, then reset
    assert content(rows[43017]) == {"num_failed_logins": 1, "is_guest_login": 1}  # USER guest
    assert content(rows[43018]) == {"logged_in": 1, "is_guest_login": 1, "hot": 3}  # 3 transfers
    assert content(rows[43019]) == {"logged_in": 1}                # DNS over TCP: answered


@functools.cache
def _nsl_kdd_rows() -> list[list[str]]:
    """Every row of KDDTrain+ and KDDTest+, split into its fields."""
    rows = []
    for path in (data.TRAIN, data.TEST):
        with data.open_text(path) as fh:
            rows += [line.split(",") for line in fh]
    return rows


def test_ftp_hot_counts_transfers_as_nsl_kdd_does():
    """NSL-KDD's FTP `hot` grows with the client's command bytes at one PORT plus one transfer
    command (about 45 bytes) per unit, and with the server's at one 200/150/226 exchange
    (about 105 bytes): a unit is a file transfer, not a command. Failed logins with a guest
    name (password guessing on `guest`) keep is_guest_login."""
    hot, client, server, guest_failed = [], [], [], 0
    for f in _nsl_kdd_rows():
        if f[2] != "ftp" or f[3] != "SF" or f[21] != "1":
            continue
        if f[11] == "1" and int(f[9]) <= 40:
            hot.append(int(f[9]))
            client.append(int(f[4]))
            server.append(int(f[5]))
        guest_failed += f[11] == "0"
    for nbytes, low, high in ((client, 35, 55), (server, 80, 130)):
        slope, _ = np.polyfit(hot, nbytes, 1)
        assert low < slope < high and np.corrcoef(hot, nbytes)[0, 1] > 0.9
    assert guest_failed > 90
    rows = by_port(extract_file(SYNTHETIC / "content.pcap")[0], key="src_port")
    assert rows[43018]["hot"] == 3 and rows[43003]["hot"] == 0  # three transfers; none
    assert rows[43017]["is_guest_login"] == 1 and rows[43017]["logged_in"] == 0


def test_reading_a_system_file_is_not_hot_as_in_nsl_kdd():
    """NSL-KDD's normal logged-in telnet sessions that touch an access file (`/etc/passwd`,
    `.rhosts`...) almost never count a hot indicator, so a path in a system directory is not
    one; entering the directory is (session 43001: `cat /etc/passwd`, then `cd /etc`)."""
    touched = [int(f[9]) for f in _nsl_kdd_rows()
               if f[2] == "telnet" and f[11] == "1" and f[41] == "normal" and int(f[18]) > 0]
    assert len(touched) > 50 and sum(h == 0 for h in touched) / len(touched) > 0.95
    row = by_port(extract_file(SYNTHETIC / "content.pcap")[0], key="src_port")[43001]
    assert row["num_access_files"] == 1 and row["hot"] == 1


def test_failed_logins_are_counted_where_nsl_kdd_counts_them():
    """NSL-KDD counts failed logins on telnet and FTP rows only, and reads POP3 and SSH as
    logged in once the server has spoken (TCP DNS too): its 750 POP3 password-guessing rows show
    0 failed logins and logged_in 1, its port scans that only read a POP3 greeting logged_in 1."""
    failed, spoke, spoke_in = set(), {}, {}
    for f in _nsl_kdd_rows():
        if float(f[10]) > 0:
            failed.add(f[2])
        if f[1] == "tcp" and f[2] in ("pop_3", "ssh", "domain") and float(f[5]) > 0:
            spoke[f[2]] = spoke.get(f[2], 0) + 1
            spoke_in[f[2]] = spoke_in.get(f[2], 0) + int(f[11] == "1")
    assert failed == {"telnet", "ftp"}
    assert all(spoke_in[s] / spoke[s] > 0.9 for s in ("pop_3", "ssh", "domain"))
    rows = extract_file(SYNTHETIC / "content.pcap")[0]
    counted = {r["service"] for r in rows if r["num_failed_logins"]}
    assert counted <= failed and counted == {"telnet", "ftp"}
