"""systemd unit, Debian package and install layout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sensor.config import defaults
from tests.conftest import PCAPS, ROOT

UNIT = ROOT / "packaging" / "kdd-sensor@.service"


def installed_command() -> str:
    found = shutil.which("kdd-sensor") or str(Path(sys.executable).parent / "kdd-sensor")
    if not Path(found).exists():
        pytest.skip("kdd-sensor is not installed in this environment")
    return found


@pytest.fixture
def unit_instance(tmp_path) -> Path:
    """The unit as the instance kdd-sensor@eth1, run by the installed command."""
    path = tmp_path / "kdd-sensor@eth1.service"
    path.write_text(UNIT.read_text().replace("/usr/bin/kdd-sensor", installed_command()))
    return path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_verifies_clean(unit_instance):
    out = subprocess.run(["systemd-analyze", "verify", str(unit_instance)],
                         capture_output=True, text=True)
    # verify exits 0 on many problems: its stderr is the verdict.
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_security_exposure(unit_instance):
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit_instance)],
                         capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out.stdout + out.stderr)
    assert m, out.stdout[-500:]
    print(f"\nsystemd-analyze security: {m.group(1)} {m.group(2)}")
    assert float(m.group(1)) <= 2.5


def test_unit_requirements():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure",
                 "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
                 "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "StateDirectory=kdd-sensor", "LogsDirectory=kdd-sensor",
                 "RestrictAddressFamilies=AF_UNIX AF_PACKET AF_NETLINK AF_INET AF_INET6",
                 "ExecReload=/bin/kill -USR2 $MAINPID", "User=kdd-sensor"):
        assert line in text, line
    assert "--interface %i" in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb missing")
def test_debian_package_installs_everything(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "packaging" / "build-deb.sh")], cwd=ROOT,
                         env=dict(os.environ, PY=sys.executable), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    deb = ROOT / out.stdout.strip().splitlines()[-1]
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for path in ("usr/bin/kdd-sensor", "lib/systemd/system/kdd-sensor@.service",
                 "usr/lib/sysusers.d/kdd-sensor.conf", "usr/lib/tmpfiles.d/kdd-sensor.conf",
                 "etc/logrotate.d/kdd-sensor", "etc/kdd-sensor/kdd-sensor.yaml",
                 "usr/lib/kdd-sensor/site-packages/models/kdd_cnn_lstm.tflite",
                 "usr/lib/kdd-sensor/site-packages/models/kdd_cnn_lstm.json",
                 "usr/share/doc/kdd-sensor/README.md"):
        assert (root / path).exists(), path
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True).stdout
    assert "Package: kdd-sensor" in info and "conffiles" in info
    cfg = yaml.safe_load((root / "etc/kdd-sensor/kdd-sensor.yaml").read_text())
    expected = defaults()
    expected["alerts"]["eve"] = {"enabled": True, "path": "/var/log/kdd-sensor/eve.json"}
    expected["alerts"]["syslog"]["enabled"] = True
    expected["user"] = "kdd-sensor"
    assert cfg == expected
    # The packaged program runs from its own tree and finds its model.
    site = root / "usr/lib/kdd-sensor/site-packages"
    run = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                          "from sensor.cli import main; main(sys.argv[2:])", str(site), "replay",
                          str(PCAPS / "realtools" / "land.pcap"), "--fast", "-"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={"PATH": os.environ["PATH"]})
    assert run.returncode == 0, run.stderr
    assert "KDD-SENSOR DoS connection" in run.stdout
