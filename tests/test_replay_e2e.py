"""End to end: real captures through `kdd-sensor replay`, the shipped int8 model, and a real
rsyslogd on loopback receiving RFC 5424 alerts over TCP.

Attack captures must yield alerts of their class; normal captures alerts on at most 1% of
their connections. Captures the shipped model gets wrong are marked xfail(strict): they fail
the suite the day they start passing, so the list stays honest.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import PCAPS, PUBLIC, shared_pcap
from tests.rsyslog import Rsyslog
from tests.test_alert_formats import RFC5424

REAL = PCAPS / "realtools"


def known(*values, reason: str, id: str | None = None):
    """A capture the shipped model gets wrong, and the data's reason why (module docstring)."""
    return pytest.param(*values, marks=pytest.mark.xfail(strict=True, reason=reason), id=id)


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory):
    server = Rsyslog(tmp_path_factory.mktemp("rsyslog"))
    server.start()
    yield server
    server.stop()


def replay(capture, rsyslog, tmp_path, *extra: str, config: str = "") -> dict:
    """Replay one capture (with `config` added to the sensor's YAML); return the alerts
    rsyslog received and the connection log."""
    before = len(rsyslog.lines())
    conn_log = tmp_path / "connections.csv"
    eve = tmp_path / "eve.json"
    cfg = tmp_path / "sensor.yaml"
    cfg.write_text(f"alerts:\n  syslog:\n    spool_dir: {tmp_path / 'spool'}\n{config}")
    out = subprocess.run(
        [sys.executable, "-m", "sensor.cli", "replay", str(capture), "-c", str(cfg),
         "--syslog", f"tcp://127.0.0.1:{rsyslog.tcp_port}", "--eve", str(eve),
         "--connections", str(conn_log), "--no-progress", *extra],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(conn_log.open()))
    events = [json.loads(line) for line in eve.read_text().splitlines()]
    lines = rsyslog.lines(expect=before + len(events))[before:]
    return {"syslog": lines, "rows": rows, "eve": events, "stderr": out.stderr}


def syslog_classes(lines: list[str]) -> Counter:
    for line in lines:
        assert RFC5424.match(line), line
    return Counter(re.search(r' class="(\w+)"', line).group(1) for line in lines)


# (capture, class, the attacked port when the capture also holds other traffic)
ATTACKS = [
    ("synflood.pcap", "dos", None),     # hping3 -S --rand-source, 20,000 SYNs at ~25,000/s
    ("synflood_one_source.pcap", "dos", None),  # hping3 -S from its own address: SYN, SYN-ACK, RST
    ("smurf.pcap", "dos", None),        # hping3 ICMP echo replies of 1,000 bytes, spoofed sources
    ("land.pcap", "dos", None),         # hping3 with source = destination (address and port)
    ("teardrop.pcap", "dos", None),     # overlapping UDP fragments (scapy: no tool exists)
    ("portscan.pcap", "probe", None),   # nmap -sS -p 1-1000
    ("masscan.pcap", "probe", None),    # masscan -p 1-2000, its own TCP stack
    ("scan_filtered.pcap", "probe", None),  # nmap -sS -p 1-1000 at a host that never answers
    ("icmpsweep.pcap", "probe", None),  # nmap -sn -PE over 61 addresses
    known("fping_sweep.pcap", "probe", None,
        reason="fping's echoes carry 56 data bytes, ping's size: KDDTrain+'s sweeps "
        "(ipsweep, nmap) are 8 or 18 bytes and its normal pings 30 or 64, so the model calls "
        "all 126 normal though the window is a sweep's (63 hosts in 0.6 s). A training with "
        "models.train.with_sweep_twins catches it but regressed other captures"),
    known("zmap_sweep.pcap", "probe", None,
        reason="zmap's SYNs to port 80 of 128 addresses, one each: KDDTrain+ has "
        "no horizontal TCP scan (1 row with 10+ connections to one service in 2 s, most to "
        "other hosts, and 1 or 2 to its own host: normal) and its 2,615 http REJ rows are "
        "normal; its 62 answered probes are classed normal, and 63 of the 66 unanswered "
        "probe"),
    ("portsweep.pcap", "probe", None),  # nmap -sS, 10 ports on each of 31 addresses
    ("scan_connect.pcap", "probe", None),  # nmap -sT -p 1-1000 (full handshakes)
    ("scan_fin.pcap", "probe", None),      # nmap -sF, -sX, -sN, -sA over the top 500 ports
    ("scan_xmas.pcap", "probe", None),
    ("scan_null.pcap", "probe", None),
    ("scan_ack.pcap", "probe", None),
    ("scan_udp.pcap", "probe", None),      # nmap -sU over the top 100 ports
    ("scan_os.pcap", "probe", None),       # nmap -O
    ("scan_version.pcap", "probe", None),  # nmap -sV over the top 50 ports (service probes)
    ("scan_ipv6.pcap", "probe", None),     # nmap -6 -sS -p 1-1000 over IPv6
    ("scan_slow.pcap", "probe", None),     # nmap -sS -T2 -p 1-60: 0.4 s between probes
    ("scan_frag.pcap", "probe", None),     # nmap -sS -f: every probe in 8-byte IP fragments
    ("scan_decoy.pcap", "probe", None),    # nmap -sS -D: each probe also from 2 decoy sources
    known("udp_flood.pcap", "dos", None,
        reason="NSL-KDD's training data has no UDP flood: of hping3's 5,000 "
        "datagrams to udp/53, 4,866 are classed normal and 134 probe (the float model: 4,810 "
        "and 190; model 1.2.0's int8 rounding called all 5,000 probe)"),
    known("ping_flood.pcap", "dos", None,
        reason="NSL-KDD's ICMP flood rows (smurf) are echo *replies*: an echo "
        "request flood and its replies are all classed probe"),
    known("ping_f.pcap", "dos", None,
        reason="ping -f's echoes carry 56 data bytes, the size of a normal ping: "
        "KDDTrain+'s 716 echo rows of 20-100 bytes are normal or satan and one has a traffic "
        "window over 100; all 2,000 are classed normal"),
    ("web_back.pcap", "dos", "80"),     # curl sending back's 54,000 slashes; nginx answers 414
    ("pod.pcap", "dos", None),          # echo requests reassembling past 65,535 bytes (scapy)
    ("ftp_guess.pcap", "r2l", "21"),    # hydra against vsftpd, 3 attempts per connection
    ("telnet_guess.pcap", "r2l", "23"),  # hydra against busybox telnetd, 5 attempts per connection
    # a user's telnet session: an exploit compiled with gcc, a root shell through a setuid helper
    ("telnet_u2r.pcap", "u2r", "23"),
    known("ssh_guess.pcap", "r2l", "22",
        reason="KDDTrain+ has no SSH password guessing (its 311 ssh rows are "
        "neptune and scans, 5 normal) and encryption hides the failed logins: hydra's 8 "
        "connections to OpenSSH are all classed normal"),
    known("pop3_guess.pcap", "r2l", "110",
        reason="KDDTrain+ has no POP3 password guessing; NSL-KDD's own 750 (in "
        "KDDTest+ only) read as logged in with no failed login, as hydra's 5 connections to "
        "Dovecot do here, and the model classes those normal (here 4, and 1 probe)"),
    ("imap_guess.pcap", "r2l", "143"),  # hydra against Dovecot IMAP: never logged in
    known("ftp_guess_proftpd.pcap", "r2l", "21",
        reason="hydra's default 16 tasks against ProFTPD: 30 of 72 connections "
        "classed r2l, as with ftp_guess_many below: those with 10 or more connections to the "
        "server in their 2 s window come out normal (the float model: 35; model 1.2.0's int8 "
        "rounding: 37)"),
    known("ftp_guess_many.pcap", "r2l", "21",
        reason="hydra's default 16 tasks against vsftpd: 22 of 72 connections "
        "classed r2l (the float model: 28). Each wave opens 16 at once, and the model calls "
        "those with 10 or more connections to the server in their 2 s window normal (KDDTrain+'s 53 guess_passwd "
        "rows are telnet, each with 1-3 connections in its 2 s window)"),
    known(PUBLIC / "zeek_ftp_bruteforce.pcap", "r2l", "21",
        reason="one failed login of a regular user per connection: KDDTrain+'s "
        "28 FTP rows like that are all normal (its FTP guessing, in KDDTest+ only, tries the "
        "guest account), and so are these 30", id="zeek_ftp_bruteforce.pcap"),
    known("web_dirb.pcap", "probe", "80",
        reason="dirb's 300 requests travel in one keep-alive connection of 36 kB "
        "of requests: KDDTrain+'s http rows with over 20 kB of requests are 949 back (DoS) and "
        "1 normal, and the model says dos"),
    known("http_flood.pcap", "dos", "80",
        reason="ab's 1,000 GETs, one per connection, fill the 2-second window "
        "past 500: KDDTrain+ has no http SF row with a window over 100 (116 of 50-100, all "
        "normal), and all are classed normal"),
    known("medusa_ftp.pcap", "r2l", "21",
        reason="one failed login per connection, closed cleanly (SF): KDDTrain+'s "
        "29 ftp SF rows with one failed login are all normal, and so are these 40"),
    known("ncrack_ftp.pcap", "r2l", "21",
        reason="1-3 failed logins per connection, closed cleanly (SF): "
        "KDDTrain+'s ftp SF rows with failed logins are 29 normal and 1 probe; hydra's "
        "connections, which end in resets (RSTR), are classed r2l"),
    known("ncrack_telnet.pcap", "r2l", "23",
        reason="telnet sessions closed cleanly (SF) after 1-3 failed logins: "
        "KDDTrain+'s 13 telnet SF rows with 2-4 failed logins are all normal, its guessing "
        "ends in resets (RSTO 45, RSTR 4); 1 of 36 classed r2l"),
    known("slowloris.pcap", "dos", "80",
        reason="slowhttptest's 100 half-sent requests are http SF records of "
        "~20 s with no answer; KDDTrain+ has 3 http SF rows with no answer and no slow HTTP "
        "DoS (apache2 is in KDDTest+ only): all classed normal"),
]


@pytest.mark.parametrize("name, cls, port", ATTACKS)
def test_attack_capture_alerts_its_class(rsyslog, tmp_path, name, cls, port):
    result = replay(name if isinstance(name, Path) else REAL / name, rsyslog, tmp_path)
    classes = syslog_classes(result["syslog"])
    assert classes[cls] > 0, f"no {cls} alert; got {dict(classes)}"
    assert len(result["syslog"]) == len(result["eve"])  # every alert reached rsyslog
    rows = [r for r in result["rows"] if port is None or r["dst_port"] == port]
    predicted = Counter(r["predicted_class"] for r in rows)
    # The attack's own class is the majority of what the model says about its connections.
    assert predicted[cls] > len(rows) / 2, dict(predicted)


NORMAL = [
    ("normal_web.pcap", REAL),      # curl against nginx
    ("normal_https.pcap", REAL),    # the same over TLS 1.3 and 1.2
    ("normal_dns.pcap", REAL),      # dig against dnsmasq
    ("normal_smtp.pcap", REAL),     # swaks against OpenSMTPD
    ("normal_ssh.pcap", REAL),      # OpenSSH: commands, scp of 200 kB, an interactive shell
    ("normal_pop3.pcap", REAL),     # curl listing and fetching mail from Dovecot
    ("normal_telnet.pcap", REAL),   # a user logs in to busybox telnetd, runs 5 commands, leaves
    ("normal_http_upload.pcap", REAL),  # WebDAV PUTs of 60 kB to nginx
    ("normal_web_ipv6.pcap", REAL),  # curl against nginx over IPv6
    ("normal_browser.pcap", REAL),  # headless Chromium reading 5 pages, 6 keep-alive connections
    ("normal_snmp.pcap", REAL),     # snmpwalk and snmpget polling net-snmp, 3 s apart
    ("zeek_http_get.pcap", PUBLIC),
    ("zeek_wikipedia.pcap", PUBLIC),
    ("ndpi_smtp.pcap", PUBLIC),
    # lftp against vsftpd, anonymous, passive and active mode: model 1.1.1, trained without
    # cold starts, called the first short transfers of each r2l (README, Limitations)
    ("normal_ftp.pcap", REAL),
    ("normal_ftp_active.pcap", REAL),
    # curl's 6 IMAP sessions; model 1.2.0's int8 rounding called one r2l at 0.59, its float
    # model normal, as 1.3.0 does in int8 (models/REPORT.md: fixed gate ranges)
    ("normal_imap.pcap", REAL),
    ("normal_dns_tcp.pcap", REAL),  # dig +tcp (1.1.1: 2 of 3 r2l)
    known("normal_mixed.pcap", REAL,
        reason="4 rounds of web, DNS, IMAP, POP3, SMTP, FTP and SSH against one "
        "server: the 4 anonymous FTP control sessions come out r2l (0.62-0.70). Each follows "
        "4 other services of the same host within 2 s (count 5, diff_srv_rate 1.00); with a "
        "window of one the model says normal (0.77), and lftp's FEAT/PWD/SIZE/MDTM make 133 "
        "bytes for one transfer where NSL-KDD's guest sessions spend about 44 per transfer"),
    known("normal_ftp_user.pcap", REAL,
        reason="a regular account's sessions (list, upload, download) come out "
        "u2r: KDDTrain+ holds 4 logged-in non-guest FTP sessions that are normal and 3 "
        "attacks (buffer_overflow, loadmodule, rootkit), and the upload (a file creation) "
        "with lftp's SITE UTIME (hot) looks like the attacks"),
    # curl with a browser's headers fetching 60 pages over one keep-alive connection (20.8 kB
    # of requests, where KDDTrain+'s http rows with over 20 kB are 949 back and 1 normal):
    # model 1.2.0's int8 rounding said dos at 0.56, its float model and 1.3.0 normal
    ("normal_keepalive.pcap", REAL),
    known("normal_telnet_dev.pcap", REAL,
        reason="telnet_u2r without the root shell: a user writes, compiles and runs a "
        "small program in a 5 s session, classed u2r at 0.996. KDDTrain+'s 27 normal telnet "
        "sessions that create files and count a hot indicator last 3 hours (median; its 13 "
        "U2R sessions like them 79-305 s), and 1 of its 286 normal sessions under 30 s does both"),
    known("normal_lan.pcap", REAL,
        reason="a workstation joining a LAN: dnsmasq's DHCP offer and ack to the new "
        "client (one udp private record of 900 bytes, no answer) come out probe at 0.99; "
        "KDDTrain+'s private rows like it are nmap's UDP probes (206 of 211 with 200-399 "
        "bytes unanswered) and DARPA's network had no DHCP"),
]


@pytest.mark.parametrize("name, where", NORMAL)
def test_normal_capture_stays_quiet(rsyslog, tmp_path, name, where):
    result = replay(where / name, rsyslog, tmp_path)
    rows = result["rows"]
    assert rows
    assert len(result["syslog"]) <= 0.01 * len(rows), syslog_classes(result["syslog"])


def test_exploited_root_shell_reads_as_a_local_exploit(rsyslog, tmp_path):
    """telnet_u2r's script: alice logs in, creates 3 files (mkdir, `> tar`, `> x.c`), runs
    chmod, gcc and ./x (hot), and the helper hands her a `# ` prompt without su, at which she
    types 4 commands (id, wc -l /etc/shadow, ls -ld /root, exit)."""
    result = replay(REAL / "telnet_u2r.pcap", rsyslog, tmp_path)
    sessions = [r for r in result["rows"] if r["service"] == "telnet"]
    assert len(sessions) == 2
    for r in sessions:
        assert (r["logged_in"], r["root_shell"], r["su_attempted"], r["num_compromised"]) == (
            "1", "1", "0", "1")
        assert (r["num_root"], r["hot"], r["num_file_creations"], r["num_access_files"]) == (
            "4", "3", "3", "1")


def to_group(address: str) -> bool:
    return ipaddress.ip_address(address).is_multicast or address == "255.255.255.255"


def test_lan_chatter_to_groups_raises_no_alert(rsyslog, tmp_path):
    """avahi-daemon, udhcpc, nmblookup, gssdp-discover and dig as a workstation joining a LAN:
    no NSL-KDD row looks like mDNS, SSDP or NetBIOS announcements; model 1.2.0's int8 rounding
    called some of them dos, 1.3.0 calls them normal, and the default suppression of multicast
    and broadcast destinations (tests/test_thresholds.py) would keep either out of the alerts."""
    result = replay(REAL / "normal_lan.pcap", rsyslog, tmp_path)
    chatter = [r for r in result["rows"] if to_group(r["dst_ip"])]
    assert {r["service"] for r in chatter} >= {"other", "private", "oth_i"}
    assert len(chatter) >= 10
    # the capture still alerts (the DHCP offer to the new client), never to a group address
    assert result["eve"] and not [e for e in result["eve"] if to_group(e["dest_ip"])]


def test_a_subnet_broadcast_is_suppressed_by_the_link_broadcast_rule(rsyslog, tmp_path):
    """Zeek's smtp trace holds a NetBIOS datagram to 10.10.1.255, Ethernet ff:ff:ff:ff:ff:ff:
    the model calls it probe, and the default link_broadcast rule keeps it out of the alerts
    without knowing the subnet's mask."""
    result = replay(PUBLIC / "zeek_smtp.pcap", rsyslog, tmp_path)
    (netbios,) = [r for r in result["rows"] if r["dst_ip"] == "10.10.1.255"]
    assert netbios["predicted_class"] == "probe"
    assert not [e for e in result["eve"] if e["dest_ip"] == "10.10.1.255"]
    assert re.search(r"alerts suppressed\s+1 \(probe 1\)", result["stderr"]), result["stderr"]


def test_unanswered_attempts_are_held_back_by_the_default_rule(rsyslog, tmp_path):
    """curl, ssh and swaks against a server whose answers are dropped: the model calls the S0
    records dos (none of NSL-KDD's normal S0 rows go to ssh or https), and the default
    detection_filter holds them back, as one client's attempts never make 5 in 2 s."""
    result = replay(REAL / "normal_unanswered.pcap", rsyslog, tmp_path)
    attempts = [r for r in result["rows"] if r["flag"] == "S0"]
    assert len(attempts) == 18
    assert sum(r["predicted_class"] == "dos" for r in attempts) >= 15
    assert result["syslog"] == [] and result["eve"] == []


def test_public_scans_are_probes(rsyslog, tmp_path):
    paths = [shared_pcap("ndpi_synscan.pcap"), shared_pcap("sgr_portScan_1_to_10000.pcapng")]
    result = replay(paths[0], rsyslog, tmp_path)
    assert Counter(r["predicted_class"] for r in result["rows"]).most_common(1)[0][0] == "probe"
    result = replay(paths[1], rsyslog, tmp_path)
    assert Counter(r["predicted_class"] for r in result["rows"]).most_common(1)[0][0] == "probe"


@pytest.mark.parametrize("name, cls", [("synflood.pcap", "dos"), ("portscan.pcap", "probe")])
def test_detection_latency_in_capture_time(rsyslog, tmp_path, name, cls):
    result = replay(REAL / name, rsyslog, tmp_path)
    first_packet = subprocess.run(["tshark", "-r", str(REAL / name), "-c", "1", "-T", "fields",
                                   "-e", "frame.time_epoch"], capture_output=True, text=True)
    if first_packet.returncode != 0:
        pytest.skip("tshark not installed")
    t0 = float(first_packet.stdout.strip())
    first_alert = min(_eve_time(e) for e in result["eve"] if e["kdd"]["class"] == cls)
    latency = first_alert - t0
    print(f"\n{name}: first {cls} alert {latency:.2f} s after the first packet (capture time)")
    assert latency <= 3.0


def _eve_time(event: dict) -> float:
    return datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_an_open_connection_is_judged_before_it_ends(rsyslog, tmp_path):
    """hydra's IMAP guessing, each connection open for seconds: judged on a snapshot after
    1 s, a guessing connection alerts r2l while it lasts. Nothing is lost or doubled: every
    connection that alerts without snapshots alerts with them, earlier, once per class, and
    the connection log is the same."""
    (tmp_path / "interim").mkdir()
    (tmp_path / "plain").mkdir()
    interim = replay(REAL / "imap_guess.pcap", rsyslog, tmp_path / "interim",
                     config="extractor:\n  interim: [1]\n")
    plain = replay(REAL / "imap_guess.pcap", rsyslog, tmp_path / "plain",
                   config="extractor:\n  interim: []\n")
    assert interim["rows"] == plain["rows"]
    early = {(e["flow_id"], e["kdd"]["class"]): e for e in interim["eve"]}
    assert len(early) == len(interim["eve"])  # one alert per connection and class
    late = {(e["flow_id"], e["kdd"]["class"]): e for e in plain["eve"]}
    assert len(late) >= 10 and set(late) <= set(early)
    open_ones = [key for key in late if early[key]["kdd"].get("interim")]
    assert len(open_ones) >= len(late) / 2
    for key in open_ones:
        assert _eve_time(early[key]) < _eve_time(late[key]) - 0.5
        assert early[key]["kdd"]["flag"] == "S1" and late[key]["kdd"]["flag"] != "S1"
    marked = [line for line in interim["syslog"] if ' interim="true"' in line]
    assert len(marked) == sum(1 for e in interim["eve"] if e["kdd"].get("interim"))
    assert all(RFC5424.match(line) and "connection still open" in line for line in marked)
    assert re.search(r"alerts not repeated\s+\d", interim["stderr"]), interim["stderr"]


def test_syslog_outage_during_replay_loses_nothing(rsyslog, tmp_path):
    """rsyslogd stopped mid-replay and restarted: every alert arrives, in order, once."""
    import threading

    eve = tmp_path / "eve.json"
    cfg = tmp_path / "sensor.yaml"
    cfg.write_text(f"alerts:\n  syslog:\n    spool_dir: {tmp_path / 'spool'}\n"
                   f"model: {{flush_ms: 50}}\n")
    before = len(rsyslog.lines())
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensor.cli", "replay", str(REAL / "icmpsweep.pcap"),
         str(REAL / "smurf.pcap"), "--speed", "recorded", "-c", str(cfg),
         "--syslog", f"tcp://127.0.0.1:{rsyslog.tcp_port}", "--eve", str(eve), "--no-progress"],
        stderr=subprocess.PIPE, text=True)

    def outage():
        time.sleep(2.0)
        rsyslog.stop()
        time.sleep(2.0)
        rsyslog.start()
    t = threading.Thread(target=outage)
    t.start()
    _, err = proc.communicate(timeout=600)
    t.join()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in eve.read_text().splitlines()]
    lines = rsyslog.lines(expect=before + len(events))[before:]
    assert len(events) > 100
    ids = [re.search(r' flow_id="(\d+)"', line).group(1) for line in lines]
    assert ids == [str(e["flow_id"]) for e in events]  # all, in the same order, none twice
    spooled = int(re.search(r"sink syslog\s+sent [\d,]+, spooled ([\d,]+)", err).group(1)
                  .replace(",", ""))
    assert spooled > 0, err  # the outage did hit alerts, which waited in the spool


def test_recorded_speed_keeps_the_capture_pace(tmp_path):
    capture = REAL / "land.pcap"      # 5 packets over 0.8 s of capture time
    runs = {}
    for speed in ("max", "recorded"):
        eve = tmp_path / f"{speed}.json"
        out = subprocess.run([sys.executable, "-m", "sensor.cli", "replay", str(capture),
                              "--speed", speed, "--eve", str(eve), "--no-progress"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        # the replay's own time, from the summary: interpreter and model start-up excluded
        took = float(re.search(r"throughput .*\((\d+\.\d+) s\)", out.stderr).group(1))
        runs[speed] = (took, eve.read_text().splitlines())
    assert runs["recorded"][0] - runs["max"][0] >= 0.7
    assert len(runs["recorded"][1]) == len(runs["max"][1]) > 0
