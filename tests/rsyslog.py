"""A real rsyslogd on loopback for tests: TCP and UDP inputs, raw messages to a file."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rsyslog:
    def __init__(self, workdir: Path):
        if not Path(RSYSLOGD).exists():
            pytest.skip("rsyslogd is not installed")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out = self.dir / "messages.log"
        self.tcp_port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.conf = self.dir / "rsyslog.conf"
        self.conf.write_text(f"""
global(workDirectory="{self.dir}")
module(load="imtcp")
module(load="imudp")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}" ruleset="tofile")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}" ruleset="tofile")
ruleset(name="tofile") {{
  action(type="omfile" file="{self.out}" template="raw" flushOnTXEnd="on" asyncWriting="off")
}}
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"rsyslogd exited: {self.proc.stderr.read().decode()}") from None
                time.sleep(0.05)
        raise RuntimeError("rsyslogd did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def lines(self, expect: int = 0, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            text = self.out.read_text() if self.out.exists() else ""
            lines = [x for x in text.splitlines() if x]
            if len(lines) >= expect or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)
