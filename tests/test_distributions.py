"""Normal web, mail, FTP and DNS sessions must look like NSL-KDD's normal rows of the same
service, or the model would call them attacks."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from models import data
from tests.conftest import PCAPS, PUBLIC, extract_file

CAPTURES = [PCAPS / "realtools" / n for n in ("normal_web.pcap", "normal_dns.pcap",
                                              "normal_smtp.pcap", "normal_ftp.pcap")] + [
    PUBLIC / n for n in ("zeek_http_get.pcap", "zeek_wikipedia.pcap", "ndpi_smtp.pcap",
                         "ndpi_ftp.pcap")]


@pytest.fixture(scope="module")
def normal_rows():
    by_service = defaultdict(list)
    with data.open_text(data.TRAIN) as fh:
        for line in fh:
            f = line.split(",")
            if f[41] == "normal":
                by_service[f[2]].append(f)
    return by_service


@pytest.fixture(scope="module")
def ours():
    by_service = defaultdict(list)
    for path in CAPTURES:
        for r in extract_file(path)[0]:
            by_service[r["service"]].append(r)
    return by_service


@pytest.mark.parametrize("service", ["http", "smtp", "ftp", "ftp_data", "domain_u"])
def test_rows_fall_in_the_normal_ranges(normal_rows, ours, service):
    theirs = normal_rows[service]
    mine = ours[service]
    assert mine, f"no {service} connection in the normal captures"
    flags = {f[3] for f in theirs}
    for name, col in (("src_bytes", 4), ("dst_bytes", 5), ("duration", 0)):
        values = np.array([float(f[col]) for f in theirs])
        lo, hi = values.min(), values.max()
        for r in mine:
            assert lo <= r[name] <= hi, f"{service} {name}={r[name]} outside [{lo}, {hi}]"
    for r in mine:
        assert r["flag"] in flags, f"{service} flag {r['flag']} never normal in the data"
    # logged_in as the data's normal rows of the service mostly have it.
    share = np.mean([int(f[11]) for f in theirs])
    expected = 1 if share > 0.5 else 0
    agree = np.mean([r["logged_in"] == expected for r in mine])
    assert agree >= 0.9, f"{service}: logged_in {expected} in {share:.0%} of normal rows"
