"""Configuration: the shipped default file, and a table of invalid files (key named, exit 78)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from sensor.config import ConfigError, defaults, load_config
from tests.conftest import ROOT

DEFAULT_FILE = ROOT / "packaging" / "kdd-sensor.yaml"


def test_shipped_file_states_the_defaults():
    assert yaml.safe_load(DEFAULT_FILE.read_text()) == defaults()


def test_shipped_file_is_valid():
    cfg = load_config(str(DEFAULT_FILE))
    assert cfg.extractor_config().timeouts.tcp_attempt == 1.0


INVALID = [
    ("interfaces: eth1", "interfaces", "unknown key"),
    ("extractor: {timeouts: {tcp_syn: 3}}", "extractor.timeouts.tcp_syn", "unknown key"),
    ("snaplen: big", "snaplen", "must be an integer"),
    ("snaplen: 0", "snaplen", "must be positive"),
    ("promiscuous: 1", "promiscuous", "must be true or false"),
    ("extractor: {max_connections: true}", "extractor.max_connections", "not a boolean"),
    ("extractor: {timeouts: {udp: -1}}", "extractor.timeouts.udp", "must be positive"),
    ("extractor: 5", "extractor", "must be a mapping"),
    ("extractor: {interim: [600, 60]}", "extractor.interim", "increasing positive numbers"),
    ("extractor: {interim: [0]}", "extractor.interim", "increasing positive numbers"),
    ("extractor: {interim: [60, ten]}", "extractor.interim", "increasing positive numbers"),
    ("extractor: {interim: [1, 2, 3, 4, 5, 6, 7, 8, 9]}", "extractor.interim", "at most 8"),
    ("extractor: {interim: 60}", "extractor.interim", "must be a list"),
    ("model: {confidence: {dos: 1.5}}", "model.confidence.dos", "between 0 and 1"),
    ("model: {path: /nonexistent/model.tflite}", "model.path", "no such file"),
    ("alerts: {eve: {path: /nonexistent/dir/eve.json}}", "alerts.eve.path", "does not exist"),
    ("connections_log: /nonexistent/dir/c.csv", "connections_log", "does not exist"),
    ("alerts: {syslog: {format: json}}", "alerts.syslog.format", "must be one of"),
    ("alerts: {syslog: {target: 'http://x'}}", "alerts.syslog.target", "must be local"),
    ("alerts: {cef: {format: xml}}", "alerts.cef.format", "must be one of"),
    ("alerts: {thresholds: [{type: limit, track: by_src, count: 1}]}",
     "alerts.thresholds[0].seconds", "missing"),
    ("alerts: {thresholds: [{type: often, track: by_src, count: 1, seconds: 1}]}",
     "alerts.thresholds[0].type", "limit, threshold, both, detection_filter"),
    ("alerts: {thresholds: [{type: limit, track: by_src, count: 1, seconds: 1, flag: SYN}]}",
     "alerts.thresholds[0].flag", "must be one of SF, S0"),
    ("alerts: {thresholds: [{type: limit, track: by_src, count: 1, seconds: 1, land: 1}]}",
     "alerts.thresholds[0].land", "true or false"),
    ("alerts: {thresholds: [{type: limit, track: by_src, count: 1, seconds: 1, class: x}]}",
     "alerts.thresholds[0].class", "must be one of"),
    ("alerts: {suppress: [{cidr: 10.0.0.300/8}]}", "alerts.suppress[0].cidr", "not a network"),
    ("alerts: {suppress: [{net: 10.0.0.0/8}]}", "alerts.suppress[0]", "either a cidr"),
    ("alerts: {suppress: [{cidr: 10.0.0.0/8, link_broadcast: true}]}", "alerts.suppress[0]",
     "either a cidr or link_broadcast"),
    ("alerts: {suppress: [{link_broadcast: 1}]}", "alerts.suppress[0].link_broadcast",
     "true or false"),
    ("alerts: {suppress: [{link_broadcast: true, track: by_dst}]}", "alerts.suppress[0].track",
     "has no track"),
    ("alerts: {suppress: [{cidr: 10.0.0.0/8, class: dso}]}", "alerts.suppress[0].class",
     "must be one of"),
    ("stats: {interval: -5}", "stats.interval", "must not be negative"),
    ("stop_drain_seconds: -1", "stop_drain_seconds", "must not be negative"),
    ("- just\n- a list", "(top level)", "must be a mapping"),
    ("key: [unclosed", "(file)", "not valid YAML"),
]


@pytest.mark.parametrize("text, key, problem", INVALID)
def test_invalid_config_names_the_key(tmp_path, text, key, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert err.value.key == key
    assert problem in str(err.value)


@pytest.mark.parametrize("text, key, problem", INVALID[:3])
def test_check_config_exits_78(tmp_path, text, key, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    out = subprocess.run([sys.executable, "-m", "sensor.cli", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 78
    assert key in out.stderr and problem in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_check_config_accepts_the_default():
    out = subprocess.run([sys.executable, "-m", "sensor.cli", "check-config", str(DEFAULT_FILE)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "configuration OK" in out.stdout


def test_missing_config_file():
    with pytest.raises(ConfigError) as err:
        load_config("/nonexistent/kdd.yaml")
    assert "No such file" in str(err.value)


def test_replay_with_bad_config_exits_78(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {batch_size: 0}\n")
    out = subprocess.run([sys.executable, "-m", "sensor.cli", "replay", "-c", str(path),
                          str(ROOT / "pcaps" / "synthetic" / "land.pcap")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 78 and "model.batch_size" in out.stderr
