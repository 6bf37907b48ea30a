"""The syslog sink against a real rsyslogd: delivery over TCP and UDP, and an outage."""

from __future__ import annotations

import time

import pytest

from sensor.sinks import SyslogSink
from tests.rsyslog import Rsyslog
from tests.test_alert_formats import RFC5424, make_alert


@pytest.fixture
def rsyslog(tmp_path):
    server = Rsyslog(tmp_path / "rsyslog")
    server.start()
    yield server
    server.stop()


def numbered_alerts(n: int):
    alerts = []
    for i in range(n):
        a = make_alert("dos")
        a.record.src_port = 10000 + i  # the sequence number travels in the 5-tuple
        alerts.append(a)
    return alerts


def tcp_sink(rsyslog, tmp_path, retry_seconds: float) -> SyslogSink:
    sink = SyslogSink(f"tcp://127.0.0.1:{rsyslog.tcp_port}", "rfc5424", "local5",
                      str(tmp_path / "spool"), 1)
    sink.RETRY_SECONDS = retry_seconds
    return sink


def ports_in(lines: list[str]) -> list[int]:
    return [int(line.split(' spt="')[1].split('"')[0]) for line in lines]


@pytest.mark.parametrize("scheme", ["tcp", "udp"])
def test_alerts_arrive_as_valid_rfc5424(rsyslog, tmp_path, scheme):
    port = rsyslog.tcp_port if scheme == "tcp" else rsyslog.udp_port
    sink = SyslogSink(f"{scheme}://127.0.0.1:{port}", "rfc5424", "local5", str(tmp_path / "spool"),
                      1)
    for a in numbered_alerts(20):
        sink.emit(a)
    sink.close()
    lines = rsyslog.lines(expect=20)
    assert len(lines) == 20
    assert all(RFC5424.match(line) for line in lines), lines[0]
    assert ports_in(lines) == list(range(10000, 10020))


def test_outage_spools_and_resends_in_order(rsyslog, tmp_path):
    sink = tcp_sink(rsyslog, tmp_path, retry_seconds=0.05)
    alerts = numbered_alerts(300)
    for a in alerts[:100]:
        sink.emit(a)
    assert rsyslog.lines(expect=100) and sink.stats()["spooled"] == 0
    rsyslog.stop()
    for a in alerts[100:200]:
        sink.emit(a)  # the receiver is down: these go to the spool
    assert sink.stats()["spooled"] == 100 and sink.stats()["spool_bytes"] > 0
    rsyslog.start()
    time.sleep(2 * sink.RETRY_SECONDS)  # past the back-off of the last failed connect
    for a in alerts[200:]:
        sink.emit(a)  # the first of these reconnects, drains the spool, then sends
    sink.close()
    lines = rsyslog.lines(expect=300)
    assert ports_in(lines) == list(range(10000, 10300))  # all, in order, none twice
    stats = sink.stats()
    assert stats["resent"] == 100 and stats["sent"] == 200
    assert stats["spool_bytes"] == 0 and stats["spool_dropped"] == 0


def test_alerts_inside_the_reconnect_back_off_are_spooled_not_lost(rsyslog, tmp_path):
    """A receiver back sooner than the retry timer: alerts queue behind the spool, in order."""
    sink = tcp_sink(rsyslog, tmp_path, retry_seconds=3600.0)
    alerts = numbered_alerts(30)
    for a in alerts[:10]:
        sink.emit(a)
    assert len(rsyslog.lines(expect=10)) == 10  # a killed receiver loses what it has not read
    rsyslog.stop()
    for a in alerts[10:20]:
        sink.emit(a)
    rsyslog.start()
    for a in alerts[20:]:
        sink.emit(a)  # the back-off has not run out: spooled behind the others
    assert sink.stats()["spooled"] == 20
    sink.close()  # the last attempt ignores the timer
    assert ports_in(rsyslog.lines(expect=30)) == list(range(10000, 10030))
    assert sink.stats()["resent"] == 20 and sink.stats()["spool_bytes"] == 0


def test_spool_survives_a_restart_of_the_sensor(rsyslog, tmp_path):
    spool = tmp_path / "spool"
    rsyslog.stop()
    first = SyslogSink(f"tcp://127.0.0.1:{rsyslog.tcp_port}", "rfc5424", "local5", str(spool), 1)
    for a in numbered_alerts(5):
        first.emit(a)
    first.close()
    assert (spool / "syslog.spool").exists()
    rsyslog.start()
    second = SyslogSink(f"tcp://127.0.0.1:{rsyslog.tcp_port}", "rfc5424", "local5", str(spool), 1)
    second.close()
    assert ports_in(rsyslog.lines(expect=5)) == list(range(10000, 10005))


def test_full_spool_counts_what_it_drops(tmp_path):
    sink = SyslogSink("tcp://127.0.0.1:1", "rfc5424", "local5", str(tmp_path / "spool"), 0)
    sink.spool_max = 2000
    for a in numbered_alerts(20):
        sink.emit(a)
    s = sink.stats()
    assert s["spooled"] + s["spool_dropped"] == 20 and s["spool_dropped"] > 0
    assert s["spool_bytes"] <= 2000
