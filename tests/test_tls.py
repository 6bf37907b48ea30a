"""HTTPS sessions: an answered request is a logged-in session, read from TLS record headers.

The message sequences follow RFC 5246 (TLS 1.2) and RFC 8446 (TLS 1.3, whose encrypted
handshake and session tickets travel as application-data records), not the analyzer.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from feature_extractor.content import ANALYZERS, TlsAnalyzer
from tests.conftest import PCAPS, extract_file

CCS, HANDSHAKE, APP = 20, 22, 23


def rec(kind: int, n: int) -> bytes:
    return bytes([kind, 3, 3]) + n.to_bytes(2, "big") + bytes(n)


CLIENT, SERVER = True, False
TLS12_HANDSHAKE = [
    (CLIENT, rec(HANDSHAKE, 512)),                                       # ClientHello
    (SERVER, rec(HANDSHAKE, 90) + rec(HANDSHAKE, 1800) + rec(HANDSHAKE, 4)),  # SH, Cert, SHD
    (CLIENT, rec(HANDSHAKE, 70) + rec(CCS, 1) + rec(HANDSHAKE, 40)),     # CKE, CCS, Finished
    (SERVER, rec(CCS, 1) + rec(HANDSHAKE, 40)),                          # CCS, Finished
]
TLS13_HANDSHAKE = [
    (CLIENT, rec(HANDSHAKE, 512)),                                       # ClientHello
    (SERVER, rec(HANDSHAKE, 90) + rec(CCS, 1) + rec(APP, 2100)),         # SH, encrypted flight
    (CLIENT, rec(CCS, 1) + rec(APP, 53)),                                # client Finished
    (SERVER, rec(APP, 250) + rec(APP, 250)),                             # NewSessionTickets
]
EXCHANGE = [(CLIENT, rec(APP, 120)), (SERVER, rec(APP, 16000) + rec(APP, 900))]
CLOSE = [(CLIENT, rec(21, 19))]


def logged_in(messages, cuts=()) -> int:
    """Feed the messages in order, each direction's bytes cut at the given offsets."""
    analyzer = TlsAnalyzer()
    for i, (side, data) in enumerate(messages):
        points = sorted({c % (len(data) + 1) for c in cuts[i % len(cuts)]}) if cuts else []
        for start, end in zip([0, *points], [*points, len(data)], strict=True):
            if start < end:
                analyzer.data(side, data[start:end])
    return analyzer.result().logged_in


def test_https_is_analyzed():
    assert ANALYZERS["http_443"] is TlsAnalyzer


def test_an_answered_request_is_logged_in_under_tls_1_2_and_1_3():
    assert logged_in(TLS12_HANDSHAKE + EXCHANGE + CLOSE) == 1
    assert logged_in(TLS13_HANDSHAKE + EXCHANGE + CLOSE) == 1


def test_a_handshake_without_an_answered_request_is_not():
    assert logged_in(TLS12_HANDSHAKE + CLOSE) == 0
    # TLS 1.3: the server's flight and its session tickets are application data, yet no request
    assert logged_in(TLS13_HANDSHAKE + CLOSE) == 0
    assert logged_in(TLS13_HANDSHAKE + EXCHANGE[:1] + CLOSE) == 0  # asked, never answered


def test_other_payload_on_port_443_says_nothing():
    analyzer = TlsAnalyzer()
    assert analyzer.data(CLIENT, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") is False
    analyzer.data(SERVER, b"HTTP/1.1 200 OK\r\n\r\n" + rec(APP, 10))
    assert analyzer.result().logged_in == 0


@settings(max_examples=300, deadline=None)
@given(tls13=st.booleans(),
       cuts=st.lists(st.lists(st.integers(0, 20000), max_size=6), min_size=1, max_size=4))
def test_segment_boundaries_do_not_matter(tls13, cuts):
    handshake = TLS13_HANDSHAKE if tls13 else TLS12_HANDSHAKE
    assert logged_in(handshake + EXCHANGE + CLOSE, cuts) == 1
    assert logged_in(handshake + CLOSE, cuts) == 0


def test_every_answered_https_session_of_the_real_capture_is_logged_in():
    """curl fetched 22 pages from nginx over TLS 1.3 and 1.2 (pcaps/capture_real.sh), each
    answered (200 or 404), so every session through the extractor's own path is logged in."""
    records, _ = extract_file(PCAPS / "realtools" / "normal_https.pcap")
    https = [r for r in records if r["service"] == "http_443"]
    assert len(https) == 22
    assert all(r["flag"] == "SF" and r["logged_in"] == 1 for r in https)
