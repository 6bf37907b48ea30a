"""The pipeline's inference cache: repeats are answered from it, with the model's own answer."""

from __future__ import annotations

import numpy as np

from feature_extractor.extractor import Extractor
from feature_extractor.record import CLASSES, ConnectionRecord
from models import data
from models.runtime import Classifier
from sensor.pipeline import Pipeline
from sensor.thresholds import AlertFilter


def record(features: list, n: int) -> ConnectionRecord:
    return ConnectionRecord(ts=float(n), last_ts=float(n), emit_ts=float(n), src_ip="10.0.0.1",
                            src_port=1024 + n, dst_ip="10.0.0.2", dst_port=80, proto="tcp",
                            ip_proto=6, features=list(features))


def test_repeated_features_are_classified_once_with_the_models_answer():
    rows = data.read_rows(data.TRAIN).features[:200]
    batch = [record(rows[i % 50], i) for i in range(200)]  # 50 distinct rows, each 4 times
    classifier = Classifier()
    pipeline = Pipeline(Extractor(), classifier, {c: 1.1 for c in CLASSES}, [],
                        AlertFilter([], []), None, batch_size=64)
    pipeline.pending = batch
    pipeline.flush()
    assert pipeline.cache_hits == 150
    expected = classifier.predict([r.features for r in batch]).argmax(axis=1)
    assert pipeline.by_class == {CLASSES[k]: n for k, n in
                                 zip(*np.unique(expected, return_counts=True), strict=True)}


class Collected:
    """A sink that keeps what it is given."""

    name = "collected"

    def __init__(self) -> None:
        self.alerts: list = []

    def emit(self, alert) -> None:
        self.alerts.append(alert)

    def tick(self) -> None:
        return None

    def stats(self) -> dict:
        return {"written": len(self.alerts)}


def _guessing_row(classifier: Classifier) -> list:
    """A KDDTrain+ R2L row the shipped model calls R2L at 0.9 or more."""
    rows = data.read_rows(data.TRAIN)
    r2l = [f for f, y in zip(rows.features, rows.labels, strict=True) if CLASSES[y] == "r2l"]
    probs = classifier.predict(r2l[:300])
    return r2l[next(i for i, p in enumerate(probs) if p.argmax() == 3 and p[3] >= 0.9)]


def _open_then_ended(features: list, snapshots: int) -> list[ConnectionRecord]:
    """One connection: snapshots while open, then its finished record."""
    return [ConnectionRecord(ts=1.0, last_ts=1.0 + n, emit_ts=2.0 + n, src_ip="10.0.0.1",
                             src_port=4000, dst_ip="10.0.0.2", dst_port=21, proto="tcp",
                             ip_proto=6, features=list(features), interim=int(n < snapshots))
            for n in range(snapshots + 1)]


def test_a_class_alerted_while_open_is_not_alerted_again():
    classifier = Classifier()
    sink = Collected()
    pipeline = Pipeline(Extractor(), classifier, {c: 0.5 for c in CLASSES}, [sink],
                        AlertFilter([], []), None)
    pipeline.pending = _open_then_ended(_guessing_row(classifier), snapshots=3)
    pipeline.flush()
    assert [(a.attack_class, a.record.interim) for a in sink.alerts] == [("r2l", 1)]
    assert pipeline.interim_repeats == 3
    assert pipeline.by_class == {"r2l": 1} and pipeline.snapshots == {"r2l": 3}
    assert not pipeline.interim_alerted  # forgotten once the connection ended


def test_a_snapshot_alert_held_back_leaves_the_end_free_to_alert():
    classifier = Classifier()
    sink = Collected()
    every_second = AlertFilter([{"class": "r2l", "type": "threshold", "track": "by_src",
                                 "count": 2, "seconds": 60}], [])
    pipeline = Pipeline(Extractor(), classifier, {c: 0.5 for c in CLASSES}, [sink],
                        every_second, None)
    pipeline.pending = _open_then_ended(_guessing_row(classifier), snapshots=1)
    pipeline.flush()
    assert [(a.attack_class, a.record.interim) for a in sink.alerts] == [("r2l", 0)]
    assert pipeline.interim_repeats == 0
