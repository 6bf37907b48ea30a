"""Alert wire formats: Community ID test vectors, EVE against Suricata's schema, RFC 5424,
RFC 3164, CEF and LEEF escaping."""

from __future__ import annotations

import json
import re

import pytest

from feature_extractor.record import FEATURE_NAMES, ConnectionRecord
from sensor.alerts import Alert, cef, eve_line, eve_timestamp, fast, leef, rfc3164, rfc5424
from sensor.community_id import community_id
from tests.conftest import SHARED

# Published vectors (corelight/community-id-spec baseline, also in Zeek's own tests).
VECTORS = [
    ("1.2.3.4", "5.6.7.8", 6, 1122, 3344, 0, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
    ("5.6.7.8", "1.2.3.4", 6, 3344, 1122, 0, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
    ("1.2.3.4", "5.6.7.8", 17, 1122, 3344, 0, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
    ("1.2.3.4", "5.6.7.8", 1, 8, 0, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
    ("5.6.7.8", "1.2.3.4", 1, 0, 0, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
    ("fe80:1:203:405:607:809:a0b:c0d", "fe80:1011:1213:1415:1617:1819:1a1b:1c1d", 58, 128, 0,
     0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
    ("1.2.3.4", "5.6.7.8", 6, 1122, 3344, 1, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
    ("1.2.3.4", "5.6.7.8", 17, 1122, 3344, 1, "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
    ("1.2.3.4", "5.6.7.8", 1, 8, 0, 1, "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
]


@pytest.mark.parametrize("src, dst, proto, sport, dport, seed, expected", VECTORS)
def test_community_id_vectors(src, dst, proto, sport, dport, seed, expected):
    assert community_id(src, dst, proto, sport, dport, seed) == expected


def make_alert(cls="dos", service="http", flag="S0", proto="tcp", interim=0) -> Alert:
    features = [0, proto, service, flag, 0, 0] + [0] * 16 + [5, 5] + [1.0] * 7 + [255, 255] + [
        1.0] * 8
    assert len(features) == len(FEATURE_NAMES)
    record = ConnectionRecord(1_700_000_000.25, 1_700_000_000.5, 1_700_000_001.123456,
                              "192.0.2.1", 40000, "192.0.2.2", 80, proto,
                              {"tcp": 6, "udp": 17, "icmp": 1}[proto], features,
                              interim=interim)
    probs = {"normal": 0.01, "dos": 0.01, "probe": 0.01, "r2l": 0.01, "u2r": 0.01}
    probs[cls] = 0.96
    return Alert(record, cls, probs, "1.0.0", pcap_filename="x.pcap", pcap_cnt=7)


def test_eve_timestamp_format():
    assert eve_timestamp(1_700_000_001.123456) == "2023-11-14T22:13:21.123456+0000"
    assert eve_timestamp(1_700_000_001.9999996) == "2023-11-14T22:13:21.999999+0000"


SCHEMA = SHARED / "schemas" / "suricata-eve.schema.json"


@pytest.mark.parametrize("cls", ["dos", "probe", "r2l", "u2r"])
@pytest.mark.parametrize("proto", ["tcp", "icmp"])
def test_eve_validates_against_suricata_schema(cls, proto):
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA.exists():
        pytest.skip("../shared/schemas is not here")
    schema = json.loads(SCHEMA.read_text())
    event = json.loads(eve_line(make_alert(cls, proto=proto), host="sensor1"))
    ours = event.pop("kdd")
    jsonschema.validate(event, schema)
    assert event["event_type"] == "alert" and event["alert"]["gid"] == 7800
    assert event["alert"]["signature_id"] == {"dos": 7800001, "probe": 7800002, "r2l": 7800003,
                                              "u2r": 7800004}[cls]
    assert event["timestamp"] == "2023-11-14T22:13:21.123456+0000"  # the decision's packet time
    assert ours["class"] == cls and ours["model_version"] == "1.0.0"
    assert set(ours["features"]) == set(FEATURE_NAMES)
    assert sum(ours["probabilities"].values()) == pytest.approx(1.0)
    assert event["pcap_filename"] == "x.pcap" and event["pcap_cnt"] == 7


def test_an_alert_on_an_open_connection_says_so_in_every_format():
    jsonschema = pytest.importorskip("jsonschema")
    alert = make_alert("u2r", service="telnet", flag="S1", interim=1)
    event = json.loads(eve_line(alert))
    assert event["kdd"]["interim"] is True
    assert "interim" not in json.loads(eve_line(make_alert("u2r")))["kdd"]
    if SCHEMA.exists():
        event.pop("kdd")
        jsonschema.validate(event, json.loads(SCHEMA.read_text()))
    line = rfc5424(alert, "local5", "h")
    assert RFC5424.match(line) and ' interim="true"' in line
    assert "KDD-SENSOR U2R connection still open 192.0.2.1:40000" in line
    assert "connection still open" in rfc3164(alert, "local5", "h")
    assert "cs5Label=interim cs5=true" in cef(alert)
    assert "\tinterim=true" in leef(alert)
    assert fast(alert).endswith("p=0.96 still open")


def test_eve_schema_rejects_unknown_top_level_keys():
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA.exists():
        pytest.skip("../shared/schemas is not here")
    schema = json.loads(SCHEMA.read_text())
    event = json.loads(eve_line(make_alert()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema)  # `kdd` is ours: the schema knows nothing of it


RFC5424 = re.compile(
    r'^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) (\S+) (\S+) '
    r'(\[kdd@32473(?: [a-z_]+="(?:[^"\\\]]|\\["\\\]])*")+\]) (.+)$')


def test_rfc5424_shape():
    line = rfc5424(make_alert("r2l"), "local5", "sensor1", procid=42)
    m = RFC5424.match(line)
    assert m, line
    assert int(m.group(1)) == 21 * 8 + 2  # local5, critical
    assert m.group(3, 4, 5, 6) == ("sensor1", "kdd-sensor", "42", "ALERT")
    assert 'class="r2l"' in m.group(7) and 'community_id="1:' in m.group(7)
    assert m.group(8).startswith("KDD-SENSOR R2L connection 192.0.2.1:40000 -> 192.0.2.2:80")


def test_rfc5424_escapes_structured_data():
    alert = make_alert(service='we"ird]\\')
    line = rfc5424(alert, "local5", "h")
    assert 'service="we\\"ird\\]\\\\"' in line
    assert RFC5424.match(line)


def test_rfc3164_shape_and_limit():
    line = rfc3164(make_alert(), "local5", "sensor1", procid=9)
    assert re.match(r"^<171>Nov 14 22:13:21 sensor1 kdd-sensor\[9\]: KDD-SENSOR DoS ", line)
    assert len(line.encode()) <= 1024


def test_cef_escaping():
    line = cef(make_alert(service="a|b=c\\d"))
    parts = line.split("|", 7)  # seven header fields; pipes need no escape in extensions
    assert parts[:7] == ["CEF:0", "kdd-sensor", "kdd-sensor", "0.1.0", "7800001",
                         "DoS connection", "7"]
    ext = parts[7]
    assert "app=a|b\\=c\\\\d" in ext
    assert "src=192.0.2.1" in ext and "dpt=80" in ext and "cs1=dos" in ext


def test_leef_fields():
    line = leef(make_alert("probe"))
    assert line.startswith("LEEF:1.0|kdd-sensor|kdd-sensor|0.1.0|7800002|")
    fields = dict(f.split("=", 1) for f in line.split("|", 5)[5].split("\t"))
    assert fields["src"] == "192.0.2.1" and fields["kddClass"] == "probe"
