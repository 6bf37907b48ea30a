"""The service rule, checked against what NSL-KDD's rows show."""

from __future__ import annotations

from collections import Counter

import pytest

from feature_extractor.record import SERVICES
from feature_extractor.services import TCP_SERVICES, UDP_SERVICES, icmp_service, port_service
from models import data


@pytest.fixture(scope="module")
def rows():
    out = []
    for path in (data.TRAIN, data.TEST):
        with data.open_text(path) as fh:
            out += [line.split(",") for line in fh]
    return out


def test_every_port_name_is_in_the_vocabulary():
    assert set(TCP_SERVICES.values()) | set(UDP_SERVICES.values()) <= set(SERVICES)
    emitted = {icmp_service(v, t, c) for v in (4, 6) for t in range(256) for c in range(16)}
    assert emitted - set(SERVICES) == {"oth_i"}  # ICMP types NSL-KDD never shows


def test_low_port_scan_is_private_like_nmap_in_the_data(rows):
    # nmap (1998) scanned ports 1-1024: its TCP/UDP rows are private or named, never other.
    nmap = Counter(r[2] for r in rows if r[41] == "nmap" and r[1] in ("tcp", "udp"))
    assert nmap["other"] == 0 and nmap["private"] > 400
    ours = Counter(port_service(6, p, 40000) for p in range(1, 1024))
    assert ours["other"] == 0
    assert ours["private"] > 900


def test_snmp_is_private_as_in_the_data(rows):
    snmp = Counter(r[2] for r in rows if r[41] in ("snmpgetattack", "snmpguess") and r[1] == "udp")
    assert snmp.most_common(1)[0][0] == "private"
    assert port_service(17, 161, 40000) == "private"


def test_ephemeral_ports_are_other_as_normal_traffic_shows(rows):
    normal_tcp = Counter(r[2] for r in rows if r[41] == "normal" and r[1] == "tcp"
                         and r[2] in ("private", "other"))
    assert normal_tcp["other"] > 10 * normal_tcp["private"]  # 385 against 16
    assert port_service(6, 51234, 80) == "other"


def test_named_and_special_ports():
    assert port_service(6, 80, 40000) == "http"
    assert port_service(17, 53, 40000) == "domain_u"
    assert port_service(6, 53, 40000) == "domain"
    assert port_service(6, 40000, 20) == "ftp_data"  # active-mode data from port 20
    assert port_service(6, 6010, 40000) == "X11"
    assert icmp_service(4, 3, 3) == "urp_i" and icmp_service(4, 3, 1) == "urh_i"
    assert icmp_service(6, 128, 0) == "eco_i" and icmp_service(6, 129, 0) == "ecr_i"
