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
