"""Alert volume control: Suricata's limit / threshold / both, tracked per class and address,
and CIDR suppression, all in packet time."""

from __future__ import annotations

from feature_extractor.record import FEATURE_NAMES
from sensor.config import HALF_OPEN_DOS, LOCAL_GROUPS
from sensor.thresholds import AlertFilter
from tests.test_alert_formats import make_alert


def alert_at(t: float, cls: str = "dos", src: str = "192.0.2.1", dst: str = "192.0.2.2",
             flag: str = "SF", land: int = 0):
    a = make_alert(cls)
    a.record.emit_ts = t
    a.record.src_ip, a.record.dst_ip = src, dst
    a.record.features[FEATURE_NAMES.index("flag")] = flag
    a.record.features[FEATURE_NAMES.index("land")] = land
    return a


def allowed(f: AlertFilter, alerts) -> list[bool]:
    return [f.allow(a) for a in alerts]


def test_limit_per_window():
    f = AlertFilter([{"type": "limit", "track": "by_src", "count": 2, "seconds": 10}], [])
    got = allowed(f, [alert_at(t) for t in (0, 1, 2, 3, 10.5, 11)])
    assert got == [True, True, False, False, True, True]  # a new window opens at 10.5
    assert f.thresholded["dos"] == 2


def test_threshold_every_nth():
    f = AlertFilter([{"type": "threshold", "track": "by_dst", "count": 3, "seconds": 60}], [])
    assert allowed(f, [alert_at(t) for t in range(7)]) == [False, False, True] * 2 + [False]


def test_both_once_after_count():
    f = AlertFilter([{"type": "both", "track": "by_both", "count": 3, "seconds": 60}], [])
    assert allowed(f, [alert_at(t) for t in range(6)]) == [False, False, True, False, False,
                                                           False]


def test_tracking_is_per_address_and_per_class():
    f = AlertFilter([{"type": "limit", "track": "by_src", "count": 1, "seconds": 60}], [])
    got = allowed(f, [alert_at(0, src="192.0.2.1"), alert_at(1, src="192.0.2.1"),
                      alert_at(2, src="192.0.2.9"), alert_at(3, cls="probe", src="192.0.2.1")])
    assert got == [True, False, True, True]


def test_by_rule_ignores_addresses():
    f = AlertFilter([{"type": "limit", "track": "by_rule", "count": 2, "seconds": 60}], [])
    got = allowed(f, [alert_at(0, src="192.0.2.1"), alert_at(1, src="192.0.2.2"),
                      alert_at(2, src="192.0.2.3")])
    assert got == [True, True, False]


def test_first_matching_rule_by_class_decides():
    f = AlertFilter([{"class": "probe", "type": "limit", "track": "by_src", "count": 1,
                      "seconds": 60}], [])
    got = allowed(f, [alert_at(0, "probe"), alert_at(1, "probe"), alert_at(2, "dos"),
                      alert_at(3, "dos")])
    assert got == [True, False, True, True]  # no rule for dos: everything passes


def test_suppress_by_cidr():
    f = AlertFilter([], [{"cidr": "10.0.0.0/8", "track": "by_src"},
                         {"cidr": "2001:db8::/32", "track": "by_either", "class": "probe"}])
    got = allowed(f, [alert_at(0, src="10.1.2.3"), alert_at(1, dst="10.1.2.3"),
                      alert_at(2, "probe", dst="2001:db8::5"), alert_at(3, "dos", dst="2001:db8::5")])
    assert got == [False, True, False, True]
    assert f.suppressed == {"dos": 1, "probe": 1}


def test_local_groups_suppress_multicast_and_broadcast_destinations_only():
    """192.0.2.255 may be a host of a /23: only the link-layer mark makes it a broadcast."""
    f = AlertFilter([], LOCAL_GROUPS)
    to_groups = [alert_at(0, dst=d) for d in ("224.0.0.251", "239.255.255.250",
                                              "255.255.255.255", "ff02::fb", "ff05::c")]
    from_group_member = alert_at(1, src="224.0.0.251", dst="192.0.2.2")
    unicast = [alert_at(2, dst=d) for d in ("192.0.2.255", "2001:db8::1", "223.255.255.255",
                                            "240.0.0.1")]
    subnet_broadcast = alert_at(3, dst="192.0.2.255")
    subnet_broadcast.record.link_broadcast = 1
    assert allowed(f, to_groups) == [False] * 5
    assert allowed(f, [from_group_member, *unicast]) == [True] * 5
    assert allowed(f, [subnet_broadcast]) == [False]
    assert f.suppressed == {"dos": 6}


def test_link_broadcast_rule_suppresses_what_went_to_the_link_broadcast():
    f = AlertFilter([], [{"link_broadcast": True, "class": "probe"}])
    marked = [alert_at(t, cls) for t, cls in ((0, "probe"), (1, "dos"))]
    for a in marked:
        a.record.link_broadcast = 1
    assert allowed(f, [*marked, alert_at(2, "probe")]) == [False, True, True]
    assert f.suppressed == {"probe": 1}
    assert allowed(AlertFilter([], [{"link_broadcast": False}]), marked) == [True, True]


def test_detection_filter_alerts_every_event_after_count():
    f = AlertFilter([{"type": "detection_filter", "track": "by_dst", "count": 2,
                      "seconds": 10}], [])
    got = allowed(f, [alert_at(t) for t in (0, 1, 2, 3, 4, 10.5, 11, 12)])
    assert got == [False, False, True, True, True, False, False, True]


def test_flag_and_land_narrow_a_rule():
    f = AlertFilter([HALF_OPEN_DOS], [])
    lone = [alert_at(t, flag="S0") for t in (0.0, 1.0, 2.1, 3.1)]  # one client's retries
    flood = [alert_at(5 + i / 1000, flag="S0", src=f"198.51.100.{i}") for i in range(8)]
    assert allowed(f, lone) == [False] * 4
    assert allowed(f, flood) == [False] * 4 + [True] * 4  # spoofed sources, one victim
    assert allowed(f, [alert_at(9, flag="S0", land=1)]) == [True]  # land: one packet
    assert allowed(f, [alert_at(9, flag="REJ"), alert_at(9, cls="probe", flag="S0")]) == [True,
                                                                                        True]
