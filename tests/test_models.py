"""The encoding, the shipped int8 model through LiteRT, evaluation, and a training smoke run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from feature_extractor.record import FEATURE_NAMES, SERVICES, RowError, parse_features
from models import data
from models.encoding import NUMERIC_FEATURES, Encoding
from models.runtime import DEFAULT_MODEL, FORBIDDEN_OPS, Classifier, ModelError, op_names
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def train_rows():
    return data.read_rows(data.TRAIN)


@pytest.fixture(scope="module")
def classifier():
    return Classifier(DEFAULT_MODEL)


def test_carried_data_matches_its_checksums():
    sums = dict(line.split()[::-1] for line in (data.DATA_DIR / "SHA256SUMS").read_text().split("\n")
                if line.strip())
    for name, digest in sums.items():
        assert hashlib.sha256((data.DATA_DIR / name).read_bytes()).hexdigest() == digest


def test_class_counts_match_the_dataset_readme(train_rows):
    counts = np.bincount(np.array(train_rows.labels), minlength=5).tolist()
    assert counts == [67343, 45927, 11656, 995, 52]  # normal, DoS, Probe, R2L, U2R (README)
    test = data.read_rows(data.TEST)
    # KDDTest+ with httptunnel filed under R2L: 2,754 + 133 = 2,887 R2L, 67 U2R.
    assert np.bincount(np.array(test.labels), minlength=5).tolist() == [9711, 7458, 2421, 2887, 67]


def test_encoding_round_trips_through_metadata(train_rows):
    enc = Encoding.fit(train_rows.features[:5000])
    again = Encoding.from_metadata(json.loads(json.dumps(enc.to_metadata())))
    x1 = enc.encode(train_rows.features[5000:6000])
    x2 = again.encode(train_rows.features[5000:6000])
    assert np.array_equal(x1, x2)
    assert x1.shape == (1000, 3 + len(SERVICES) + 13 + len(NUMERIC_FEATURES))
    assert x1.min() >= 0.0 and x1.max() <= 1.0
    assert np.all(x1[:, :3].sum(axis=1) == 1)  # one protocol each


def test_unseen_category_encodes_as_zeros(train_rows):
    enc = Encoding.fit(train_rows.features[:1000])
    row = list(train_rows.features[0])
    row[2] = "oth_i"  # an ICMP service the training data never shows
    x = enc.encode([row])
    service_block = x[0, 3:3 + len(SERVICES)]
    assert service_block.sum() == 0


@pytest.mark.parametrize("fields, message", [
    (["0", "tcp"], "expected 41 features"),
    (["x"] + ["0"] * 40, "column 1 (duration): not a number"),
    (["0", "tcp", "http", "SF", "-5"] + ["0"] * 36, "column 5 (src_bytes): must be a non-negative"),
    (["0", "tcp", "http", "SF"] + ["0"] * 20 + ["1.5"] + ["0"] * 16, "column 25 (serror_rate): rate above 1"),
])
def test_malformed_rows_are_rejected_clearly(fields, message):
    with pytest.raises(RowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_features(fields)


def test_metadata_that_does_not_match_the_extractor_is_refused(tmp_path):
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    for key, value in (("feature_names", list(FEATURE_NAMES[::-1])),
                       ("vocabularies", {"protocol_type": ["tcp"], "service": [], "flag": []})):
        bad = dict(meta, encoding=dict(meta["encoding"], **{key: value}))
        model = tmp_path / f"m_{key}.tflite"
        model.write_bytes(DEFAULT_MODEL.read_bytes())
        model.with_suffix(".json").write_text(json.dumps(bad))
        with pytest.raises(ModelError, match=key):
            Classifier(model)


def test_missing_model_files(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        Classifier(tmp_path / "none.tflite")
    (tmp_path / "m.tflite").write_bytes(DEFAULT_MODEL.read_bytes())
    with pytest.raises(ModelError, match="metadata not found"):
        Classifier(tmp_path / "m.tflite")


def test_exported_model_has_no_flex_or_variable_ops():
    ops = op_names(DEFAULT_MODEL)
    assert "FULLY_CONNECTED" in ops and "CONV_2D" in ops
    assert not [op for op in ops if any(bad in op for bad in FORBIDDEN_OPS)]


def test_shipped_model_reproduces_its_recorded_accuracy(classifier):
    recorded = classifier.metadata["metrics"]["kddtest_plus_accuracy"]
    rows = data.read_rows(data.TEST)
    pred = classifier.predict(rows.features).argmax(axis=1)
    accuracy = float((pred == np.array(rows.labels)).mean())
    assert abs(accuracy - recorded) <= 0.001


def test_predictions_do_not_depend_on_batching(classifier):
    rows = data.read_rows(data.TEST).features[:300]
    whole = classifier.predict(rows)
    one_by_one = np.concatenate([classifier.predict([r]) for r in rows[:40]])
    assert np.allclose(whole[:40], one_by_one, atol=1e-6)  # no state kept between invokes


def test_evaluate_json():
    out = subprocess.run([sys.executable, "-m", "sensor.cli", "evaluate", "--json",
                          str(data.TEST21)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)
    assert result["file"].endswith("KDDTest-21.txt.gz") and result["rows"] == 11850
    for key in ("accuracy", "binary_accuracy", "macro_f1"):
        assert 0.0 < result[key] <= 1.0
    assert set(result["per_class"]) == {"normal", "dos", "probe", "r2l", "u2r"}
    assert set(result["per_class"]["dos"]) >= {"precision", "recall", "f1"}


def test_evaluate_accepts_extractor_output_with_labels(tmp_path):
    rows = data.read_rows(data.TEST)
    header = "ts,src_ip,src_port,dst_ip,dst_port,proto," + ",".join(FEATURE_NAMES) + ",label"
    lines = [header]
    with data.open_text(data.TEST) as fh:
        for i, line in enumerate(fh):
            if i == 50:
                break
            fields = line.strip().split(",")
            lines.append("0,192.0.2.1,1,192.0.2.2,2,tcp," + ",".join(fields[:41]) + "," + fields[41])
    path = tmp_path / "ours.csv"
    path.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "sensor.cli", "evaluate", "--json", str(path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["rows"] == 50 == len(rows.features[:50])


def smoke_training(out_dir: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "sensor.cli", "train", "--epochs", "2",
                          "--subset", "3000", "--cold-start-fraction", "0.1", "--echo-twins",
                          "--calibration-samples", "2", "--no-report",
                          "--out", str(out_dir)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.mark.slow
def test_training_smoke_run_converts_and_loads(tmp_path):
    pytest.importorskip("tensorflow")
    out = smoke_training(tmp_path)
    assert "epoch   1" in out.stdout and "epoch   2" in out.stdout
    training = json.loads((tmp_path / "kdd_cnn_lstm.json").read_text())["training"]
    assert abs(training["rows"] - 3000) < 10  # the subset asked for, not the rest of the file
    # 90% of it is the training part; about a tenth of that again per kind of cold start
    assert 400 < training["cold_start_rows"] < 700 and training["cold_start_fraction"] == 0.1
    # the subset holds 3000 * 198 / 125973 pod rows: about 4, 90% of them in the training part
    assert 1 <= training["echo_twin_rows"] <= 10
    # two calibration samples tried on validation plus 5,000 column-shuffled rows; the kept
    # one agrees best with the float model
    calibration = training["calibration"]
    assert calibration["samples"] == 2 and 5290 <= calibration["check_rows"] <= 5310
    agreement = calibration["agreement"]
    assert calibration["chosen_seed"] == 1 + agreement.index(max(agreement))
    clf = Classifier(tmp_path / "kdd_cnn_lstm.tflite")
    assert clf.predict(data.read_rows(data.TEST21).features[:64]).shape == (64, 5)
    assert not [op for op in op_names(tmp_path / "kdd_cnn_lstm.tflite")
                if any(bad in op for bad in FORBIDDEN_OPS)]


@pytest.mark.slow
def test_training_is_reproducible(tmp_path):
    """The same `train` command twice gives the same model file, so anyone can rebuild the
    shipped model and its report (it was, byte for byte, from a fresh `kdd-sensor train`)."""
    pytest.importorskip("tensorflow")
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        smoke_training(run)
    first, second = ((run / "kdd_cnn_lstm.tflite").read_bytes() for run in runs)
    assert first == second
    meta = [json.loads((run / "kdd_cnn_lstm.json").read_text()) for run in runs]
    for m in meta:
        del m["training"]["seconds"]
    assert meta[0] == meta[1]


def test_a_class_weight_ceiling_caps_only_the_heavier_classes():
    from models.train import class_weights

    labels = np.repeat([0, 1, 2, 3, 4], [10000, 2500, 400, 100, 4])
    plain = class_weights(labels, 0.5)
    assert [round(plain[c], 2) for c in range(5)] == [1.0, 2.0, 5.0, 10.0, 50.0]
    capped = class_weights(labels, 0.5, ceiling="r2l")
    assert capped == {**plain, 4: plain[3]}


def test_echo_twins_copy_fragmented_echoes_as_the_other_echo_type():
    from models.train import with_echo_twins

    base = ["0", "icmp", "ecr_i", "SF", 1480, 0, 0, 1] + [0] * 33
    rows = [base, base[:2] + ["eco_i"] + base[3:], base[:7] + [0] + base[8:],
            base[:2] + ["tim_i"] + base[3:], ["0", "udp", "private", "SF", 28, 0, 0, 3] + [0] * 33]
    y = np.array([1, 1, 0, 0, 1])
    out, out_y = with_echo_twins(rows, y)
    assert out[:5] == rows and list(out_y[:5]) == list(y)  # the originals, untouched
    # only the two fragmented echo rows come again, each as the other echo type
    assert [r[2] for r in out[5:]] == ["eco_i", "ecr_i"] and list(out_y[5:]) == [1, 1]
    assert out[5][:2] + out[5][3:] == rows[0][:2] + rows[0][3:]


def test_sweep_twins_copy_probe_echo_sweeps_at_ping_sizes():
    from feature_extractor.record import FEATURE_NAMES
    from models.train import PING_SIZES, with_sweep_twins

    def row(service: str, srv_count: int, srv_diff_host: float) -> list:
        r = ["0", "icmp", service, "SF", 8] + [0] * 36
        r[FEATURE_NAMES.index("srv_count")] = srv_count
        r[FEATURE_NAMES.index("srv_diff_host_rate")] = srv_diff_host
        return r

    rows = [row("eco_i", 20, 1.0),   # a probe sweep: copied
            row("eco_i", 20, 1.0),   # the same window, but normal: not copied
            row("eco_i", 2, 1.0),    # too few echoes in the window
            row("eco_i", 20, 0.0),   # one host pinged many times
            row("ecr_i", 20, 1.0)]   # the answers
    y = np.array([2, 0, 2, 2, 2])
    out, out_y = with_sweep_twins(rows, y)
    assert out[:5] == rows and list(out_y[:5]) == list(y)
    assert [r[4] for r in out[5:]] == list(PING_SIZES) and list(out_y[5:]) == [2, 2]
    assert all(r[:4] + r[5:] == rows[0][:4] + rows[0][5:] for r in out[5:])


def test_cold_start_rows_hold_only_their_own_connection():
    from models.cold_start import HOST_WINDOW, TRAFFIC_WINDOW, alone

    row = ["0", "tcp", "http", "S0"] + [0] * 18 + [300, 200] + [0.5] * 7 + [255, 255] + [0.3] * 8
    both, host = alone(row, TRAFFIC_WINDOW + HOST_WINDOW), alone(row, HOST_WINDOW)
    named = dict(zip(FEATURE_NAMES, both, strict=True))
    assert named["count"] == named["dst_host_count"] == named["dst_host_srv_count"] == 1
    assert named["dst_host_same_src_port_rate"] == named["same_srv_rate"] == 1.0
    assert named["serror_rate"] == named["dst_host_srv_serror_rate"] == 1.0  # an S0 is a SYN error
    assert named["rerror_rate"] == named["diff_srv_rate"] == named["dst_host_srv_diff_host_rate"] == 0
    assert host[:31] == row[:31] and host[31:] == both[31:]


def test_cold_starts_copy_only_the_named_classes(train_rows):
    from models.cold_start import HOST_WINDOW, TRAFFIC_WINDOW, alone
    from models.train import with_cold_starts

    feats, y = train_rows.features[:20000], np.array(train_rows.labels[:20000])
    assert {3, 4} <= set(y.tolist())  # R2L and U2R rows are there to be left out
    out, out_y = with_cold_starts(feats, y, 0.1, seed=1, classes=("normal", "dos", "probe"))
    assert out[:len(feats)] == feats and out_y[:len(y)].tolist() == y.tolist()
    extra, extra_y = out[len(feats):], out_y[len(y):]
    copyable = int(np.isin(y, [0, 1, 2]).sum())
    assert set(extra_y.tolist()) <= {0, 1, 2} and 0.17 * copyable < len(extra) < 0.23 * copyable
    # each copy is some row of its class with one or both windows rewritten
    originals = {tuple(alone(f, TRAFFIC_WINDOW + HOST_WINDOW)) for f in feats}
    originals |= {tuple(alone(f, HOST_WINDOW)) for f in feats}
    assert all(tuple(row) in originals for row in extra)
