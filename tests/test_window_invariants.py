"""Relations between window features that hold in every NSL-KDD row must hold in every record
we extract from real captures: the data is the oracle, not our own reading of the task text.

The rule under test: a "different services" rate is the number of distinct services in the
window over its size, 0 with one service. Then with n connections, a share `same` of them of
this service and a rate `diff` > 0: 2/n <= diff <= 1 - same + 1/n; and diff = 0 only when
every connection is of this service. (1 - same, the reading of the task text, breaks it in
46,004 of KDDTrain+'s rows: a window of 2 with two services has diff 1.00 in all 1,319 of them.)
"""

from __future__ import annotations

import pytest

from feature_extractor.record import FEATURE_NAMES
from models import data
from tests.conftest import PCAPS, PUBLIC, extract_file

# (window size, share of this connection's partner or None, "different" rate), feature names;
# the service windows' "different hosts" rates have no same-host share among the 41 features.
WINDOWS = [("count", "same_srv_rate", "diff_srv_rate"),
           ("dst_host_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate"),
           ("srv_count", None, "srv_diff_host_rate"),
           ("dst_host_srv_count", None, "dst_host_srv_diff_host_rate")]
CAPTURES = sorted((PCAPS / "realtools").glob("*.pcap")) + sorted(PUBLIC.glob("*.pcap*"))


def broken(n: int, same: float | None, diff: float) -> bool:
    """True when the values break the rule; rates carry two decimals, and a count of 511 is
    capped: its rates come from the true count, so 2/n is no lower bound there. Without the
    partner's share (same None) only the lower bound is checked."""
    if n == 0:
        return False
    high = 1.0101 if same is None else 1 - same + 1 / n + 0.0101
    if n == 511:
        return diff > high
    if diff == 0:  # one partner; or two in a window so large that 2/n reads 0.00
        return same is not None and same < 0.995 and 2 / n >= 0.005  # (254/255 reads 1.00)
    return not (2 / n - 0.0051 <= diff <= high)


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: w[2])
def test_nsl_kdd_obeys_the_rule(window):
    at = {name: i for i, name in enumerate(FEATURE_NAMES)}
    n, same, diff = window
    rows = 0
    with data.open_text(data.TRAIN) as fh:
        for line in fh:
            f = line.split(",")
            share = None if same is None else float(f[at[same]])
            assert not broken(int(f[at[n]]), share, float(f[at[diff]])), line
            rows += 1
    assert rows == 125_973


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_our_records_obey_it(path):
    rows, _ = extract_file(path)
    for r in rows:
        for n, same, diff in WINDOWS:
            values = (r[n], None if same is None else round(r[same], 2), round(r[diff], 2))
            assert not broken(*values), (r["src_ip"], r["dst_ip"], r["service"], n, values)
