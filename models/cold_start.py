"""How the shipped model judges connections seen from a cold start (`python -m models.cold_start`).

DARPA's traffic windows were always warm; a sensor just started, or a short capture, sees the
first connections to a host with windows of one entry. This rewrites KDDTrain+ rows as the
first connection the sensor would see (both windows hold only the connection itself, or only
the host window does) and prints how each class is then predicted. A measurement behind the
README's limitations, not a test.
"""

from __future__ import annotations

import collections

import numpy as np

from feature_extractor.record import CLASSES, FEATURE_NAMES, REJ_ERROR_FLAGS, SYN_ERROR_FLAGS
from models.data import TRAIN, read_rows

SAMPLE = 5000
_AT = {n: i for i, n in enumerate(FEATURE_NAMES)}
TRAFFIC_WINDOW = ("count", "srv_count", "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate",
                  "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate")
HOST_WINDOW = ("dst_host_count", "dst_host_srv_count", "dst_host_same_srv_rate",
               "dst_host_diff_srv_rate", "dst_host_same_src_port_rate",
               "dst_host_srv_diff_host_rate", "dst_host_serror_rate", "dst_host_srv_serror_rate",
               "dst_host_rerror_rate", "dst_host_srv_rerror_rate")

# A window holding only the connection itself: counts of one, the "same" rates at 1.00, the
# error rates the connection's own (below), every other rate 0.
_ONLY_ITSELF = {"count": 1, "srv_count": 1, "dst_host_count": 1, "dst_host_srv_count": 1,
                "same_srv_rate": 1.0, "dst_host_same_srv_rate": 1.0,
                "dst_host_same_src_port_rate": 1.0}


def alone(row: list, names: tuple[str, ...]) -> list:
    """The row with the named window features of a window holding only this connection."""
    serror = 1.0 if row[_AT["flag"]] in SYN_ERROR_FLAGS else 0.0
    rerror = 1.0 if row[_AT["flag"]] in REJ_ERROR_FLAGS else 0.0
    out = list(row)
    for name in names:
        if name in _ONLY_ITSELF:
            out[_AT[name]] = _ONLY_ITSELF[name]
        elif "serror" in name:
            out[_AT[name]] = serror
        elif "rerror" in name:
            out[_AT[name]] = rerror
        else:
            out[_AT[name]] = 0.0
    return out


def main() -> None:
    from models.runtime import Classifier

    data = read_rows(TRAIN)
    labels = np.array(data.labels)
    classifier = Classifier()
    rng = np.random.default_rng(0)
    print(f"{'class':7} {'windows':26} {'correct warm':>12} {'cold':>6}  predicted when cold")
    for k, name in enumerate(CLASSES):
        picked = np.nonzero(labels == k)[0]
        picked = rng.choice(picked, min(SAMPLE, len(picked)), replace=False)
        rows = [data.features[i] for i in picked]
        warm = classifier.predict(rows).argmax(axis=1)
        for label, names in (("both hold one connection", TRAFFIC_WINDOW + HOST_WINDOW),
                             ("host window holds one", HOST_WINDOW)):
            cold = classifier.predict([alone(r, names) for r in rows]).argmax(axis=1)
            spread = collections.Counter(CLASSES[j] for j in cold)
            print(f"{name:7} {label:26} {np.mean(warm == k):12.3f} {np.mean(cold == k):6.3f}  "
                  + ", ".join(f"{c} {n}" for c, n in spread.most_common()))


if __name__ == "__main__":
    main()
