"""systemd glue: sd_notify over $NOTIFY_SOCKET (no library needed) and the watchdog period."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send READY=1, WATCHDOG=1, STATUS=..., STOPPING=1 ...; False when not under systemd, or
    when the manager's queue is full: the packet loop never waits for it (a blocking send to
    a receiver that stopped reading once froze the sensor, signals and all)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.connect(path)
            s.send(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WatchdogSec, or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


class Watchdog:
    """WATCHDOG=1 from whatever loop is running (the packet loop, a stop's drain), at most
    once per interval; nothing without a watchdog."""

    def __init__(self) -> None:
        self.interval = watchdog_interval()
        self.due = 0.0

    def tick(self, now: float) -> None:
        if self.interval and now >= self.due:
            notify("WATCHDOG=1")
            self.due = now + self.interval
