"""sd_notify without libsystemd: messages reach $NOTIFY_SOCKET, and a manager that stops
reading never blocks the caller (the packet loop)."""

from __future__ import annotations

import socket
import time

from sensor.systemd import notify


def test_messages_reach_the_notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1")
        assert manager.recv(100) == b"READY=1"


def test_a_manager_that_stops_reading_never_blocks_the_sender(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        started = time.monotonic()
        sent = [notify("WATCHDOG=1") for _ in range(5000)]  # the queue holds a few hundred
        assert time.monotonic() - started < 10
        assert sent[0] and not sent[-1]  # the first ones queued, the rest dropped
        assert manager.recv(100) == b"WATCHDOG=1"


def test_no_socket_no_message(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not notify("READY=1")
