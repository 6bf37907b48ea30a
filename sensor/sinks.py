"""Alert sinks: line files (EVE JSON, CEF/LEEF), syslog with a disk spool, journald.

Every sink has `emit(alert)`, `tick()` (retries, called from the loop), `reopen()` (SIGHUP,
logrotate) and `close()`; each counts what it wrote.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from sensor.alerts import Alert, cef, eve_line, fast, leef, rfc3164, rfc5424


def reopened(path: str, fh: TextIO) -> TextIO:
    """A fresh append handle on `path` after logrotate moved the file; the old one on failure."""
    try:
        fresh = open(path, "a", encoding="utf-8")
    except OSError as exc:
        print(f"kdd-sensor: cannot re-open {path}, still writing the old file: {exc}",
              file=sys.stderr)
        return fh
    fh.close()
    return fresh


class LineFileSink:
    """One formatted line per alert to a file (appended) or to stdout ('-')."""

    def __init__(self, name: str, path: str, fmt: Callable[[Alert], str]):
        self.name = name
        self.path = path
        self.fmt = fmt
        self.written = 0
        self.fh: TextIO = self._open()

    def _open(self) -> TextIO:
        if self.path == "-":
            return sys.stdout
        return open(self.path, "a", encoding="utf-8")

    def emit(self, alert: Alert) -> None:
        self.fh.write(self.fmt(alert) + "\n")
        self.written += 1

    def tick(self) -> None:
        self.fh.flush()

    def reopen(self) -> None:
        if self.fh is not sys.stdout:
            self.fh = reopened(self.path, self.fh)

    def close(self) -> None:
        self.fh.flush()
        if self.fh is not sys.stdout:
            self.fh.close()

    def stats(self) -> dict:
        return {"written": self.written}


def eve_sink(path: str, host: str | None = None) -> LineFileSink:
    return LineFileSink("eve", path, lambda a: eve_line(a, host))


def fast_sink(path: str) -> LineFileSink:
    return LineFileSink("fast", path, fast)


def cef_sink(path: str, fmt: str) -> LineFileSink:
    return LineFileSink(fmt, path, cef if fmt == "cef" else leef)


class SyslogSink:
    """Syslog over /dev/log, UDP or TCP (RFC 6587 octet counting), never losing an alert silently.

    When the receiver cannot be reached, messages go to a spool file (bounded, counted) and are
    resent in order, before anything new, once it is back. A TCP peer that has closed is noticed
    before writing (a readable socket that reads EOF), so nothing is written into a dead socket.
    UDP has no such signal: use TCP where loss matters.
    """

    RETRY_SECONDS = 1.0
    name = "syslog"

    def __init__(self, target: str, fmt: str, facility: str, spool_dir: str, spool_max_mb: int):
        self.target = target
        self.format = rfc5424 if fmt == "rfc5424" else rfc3164
        self.facility = facility
        self.hostname = socket.gethostname()
        self.procid = os.getpid()
        self.spool_path = Path(spool_dir) / "syslog.spool"
        self.spool_max = spool_max_mb * 1024 * 1024
        self.sock: socket.socket | None = None
        self.next_retry = 0.0
        self.sent = self.spooled = self.resent = self.spool_dropped = self.reconnects = 0
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        self.spool_size = self.spool_path.stat().st_size if self.spool_path.exists() else 0
        self._connect()
        self.tick()

    # -- transport ----------------------------------------------------------------------------

    def _connect(self) -> bool:
        self.close_socket()
        try:
            if self.target in ("local",) or self.target.startswith("unix://"):
                path = "/dev/log" if self.target == "local" else self.target[len("unix://"):]
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                s.connect(path)
            else:
                scheme, rest = self.target.split("://", 1)
                host, _, port = rest.rpartition(":")
                host = host.strip("[]")
                kind = socket.SOCK_STREAM if scheme == "tcp" else socket.SOCK_DGRAM
                info = socket.getaddrinfo(host, int(port), type=kind)[0]
                s = socket.socket(info[0], kind)
                s.settimeout(2.0)
                s.connect(info[4])
                s.settimeout(None)
            self.sock = s
            self.reconnects += 1
            return True
        except OSError:
            self.sock = None
            self.next_retry = time.monotonic() + self.RETRY_SECONDS
            return False

    def close_socket(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _peer_alive(self) -> bool:
        if self.sock is None:
            return False
        if self.sock.type != socket.SOCK_STREAM:
            return True
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable:
            try:
                if not self.sock.recv(4096, socket.MSG_DONTWAIT):
                    return False
            except BlockingIOError:
                return True
            except OSError:
                return False
        return True

    def _send(self, message: str) -> bool:
        if not self._peer_alive():
            self.close_socket()
            return False
        data = message.encode("utf-8")
        try:
            if self.sock.type == socket.SOCK_STREAM:
                self.sock.sendall(str(len(data)).encode() + b" " + data)
            else:
                self.sock.send(data)
            return True
        except OSError:
            self.close_socket()
            return False

    # -- spool --------------------------------------------------------------------------------

    def _spool(self, message: str) -> None:
        line = message.replace("\n", " ") + "\n"
        if self.spool_size + len(line) > self.spool_max:
            self.spool_dropped += 1
            print(f"kdd-sensor: syslog spool full ({self.spool_path}), alert dropped",
                  file=sys.stderr)
            return
        with open(self.spool_path, "a", encoding="utf-8") as fh:
            fh.write(line)
        self.spool_size += len(line)
        self.spooled += 1

    def _drain_spool(self) -> bool:
        """Resend the spool in order; True once it is empty."""
        if not self.spool_size:
            return True
        with open(self.spool_path, encoding="utf-8") as fh:
            lines = fh.readlines()
        for i, line in enumerate(lines):
            if not self._send(line.rstrip("\n")):
                rest = "".join(lines[i:])
                self.spool_path.write_text(rest, encoding="utf-8")
                self.spool_size = len(rest.encode())
                return False
            self.resent += 1
        self.spool_path.unlink()
        self.spool_size = 0
        return True

    # -- sink interface -----------------------------------------------------------------------

    def emit(self, alert: Alert) -> None:
        message = self.format(alert, self.facility, self.hostname, procid=self.procid)
        if self.spool_size or self.sock is None:
            self.tick()
        if not self.spool_size and self.sock is not None and self._send(message):
            self.sent += 1
            return
        self._spool(message)

    def tick(self) -> None:
        if self.sock is None and time.monotonic() >= self.next_retry:
            self._connect()
        if self.sock is not None and self.spool_size:
            self._drain_spool()

    def reopen(self) -> None:
        self._connect()

    def close(self) -> None:
        """Last delivery attempt whatever the retry timer says; what fails stays spooled."""
        self.next_retry = 0.0
        self.tick()
        self.close_socket()

    def stats(self) -> dict:
        return {"sent": self.sent, "spooled": self.spooled, "resent": self.resent,
                "spool_dropped": self.spool_dropped, "spool_bytes": self.spool_size,
                "connected": int(self.sock is not None)}


class JournaldSink:
    """Structured journal entries (journalctl KDD_CLASS=dos SRC_IP=...), via systemd-python."""

    name = "journald"

    def __init__(self) -> None:
        from systemd import journal

        self.journal = journal
        self.written = 0

    def emit(self, alert: Alert) -> None:
        r = alert.record
        self.journal.send(
            alert.summary(), PRIORITY=str(alert.info.syslog_severity),
            SYSLOG_IDENTIFIER="kdd-sensor", KDD_CLASS=alert.attack_class,
            KDD_CONFIDENCE=f"{alert.confidence:.4f}", KDD_SID=str(alert.info.sid),
            SRC_IP=r.src_ip, SRC_PORT=str(r.src_port), DEST_IP=r.dst_ip,
            DEST_PORT=str(r.dst_port), PROTO=r.proto, KDD_SERVICE=r.features[2],
            KDD_FLAG=r.features[3], COMMUNITY_ID=alert.community_id,
            KDD_MODEL_VERSION=alert.model_version, KDD_INTERIM=str(r.interim))
        self.written += 1

    def tick(self) -> None:
        return None

    def reopen(self) -> None:
        return None

    def close(self) -> None:
        return None

    def stats(self) -> dict:
        return {"written": self.written}
