"""Traffic features 23-41: the 2-second window and the 255-connection host windows.

Both are kept as running counts, so a record costs O(1) however full the windows are.
Choices (docs/features.md): a record enters the windows when it is finished, keyed by that
packet time; the current record counts itself; the 2-second window is evicted before each
record is computed; counts are capped at 511 and 255, rates use the true counts.
"Same service" is the service name, or the port for unnamed (`private`/`other`) ports.
The host windows are the last 255 connections to the same destination host and the last 255
with the same service; `dst_host_same_src_port_rate` is taken over the host window [data: a
row with dst_host_srv_count 1 and a same-source-port rate of 0.88].
"""

from __future__ import annotations

from collections import deque

TIME_WINDOW = 2.0
COUNT_CAP = 511
HOST_WINDOW = 255
SERROR_FLAGS = frozenset(("S0", "S1", "S2", "S3"))
RERROR_FLAGS = frozenset(("REJ",))


class _Group:
    """Running counts over the members of one window that share a key."""

    __slots__ = ("n", "serror", "rerror", "by")

    def __init__(self) -> None:
        self.n = 0
        self.serror = 0
        self.rerror = 0
        self.by: dict = {}

    def add(self, sub, serr: int, rerr: int, step: int) -> None:
        self.n += step
        self.serror += serr * step
        self.rerror += rerr * step
        left = self.by.get(sub, 0) + step
        if left:
            self.by[sub] = left
        else:
            del self.by[sub]


class TrafficWindows:
    def __init__(self, max_hosts: int = 65536):
        self.recent: deque = deque()      # (time, host, service, serror, rerror)
        self.by_host: dict = {}           # host -> _Group over services, in the 2 s window
        self.by_service: dict = {}        # service -> _Group over hosts, in the 2 s window
        self.host_windows: dict = {}      # host -> (deque of (service, src_port, serr, rerr), counts)
        self.service_windows: dict = {}   # service -> (deque of (host, serr, rerr), counts)
        self.max_hosts = max_hosts

    def features(self, now: float, host, service: str, src_port: int, flag: str) -> list:
        """Add one finished connection and return its 19 traffic features."""
        serr = 1 if flag in SERROR_FLAGS else 0
        rerr = 1 if flag in RERROR_FLAGS else 0
        self._evict(now - TIME_WINDOW)
        self.recent.append((now, host, service, serr, rerr))
        h = self.by_host.get(host)
        if h is None:
            h = self.by_host[host] = _Group()
        h.add(service, serr, rerr, 1)
        s = self.by_service.get(service)
        if s is None:
            s = self.by_service[service] = _Group()
        s.add(host, serr, rerr, 1)

        count, srv_count = h.n, s.n
        same_srv = h.by[service]
        out = [
            min(count, COUNT_CAP), min(srv_count, COUNT_CAP),
            h.serror / count, s.serror / srv_count, h.rerror / count, s.rerror / srv_count,
            same_srv / count, (count - same_srv) / count, (srv_count - s.by[host]) / srv_count,
        ]
        out.extend(self._host_features(host, service, src_port, serr, rerr))
        return out

    def _evict(self, horizon: float) -> None:
        recent = self.recent
        while recent and recent[0][0] < horizon:
            _, host, service, serr, rerr = recent.popleft()
            h = self.by_host[host]
            h.add(service, serr, rerr, -1)
            if not h.n:
                del self.by_host[host]
            s = self.by_service[service]
            s.add(host, serr, rerr, -1)
            if not s.n:
                del self.by_service[service]

    def _host_features(self, host, service, src_port, serr, rerr) -> list:
        hw = self.host_windows.pop(host, None)  # re-inserted last: least recently used first
        if hw is None:
            if len(self.host_windows) >= self.max_hosts:
                del self.host_windows[next(iter(self.host_windows))]
            hw = (deque(), _Group(), {})
        self.host_windows[host] = hw
        entries, g, ports = hw
        if len(entries) == HOST_WINDOW:
            old_service, old_port, o_serr, o_rerr = entries.popleft()
            g.add(old_service, o_serr, o_rerr, -1)
            _dec(ports, old_port)
        entries.append((service, src_port, serr, rerr))
        g.add(service, serr, rerr, 1)
        ports[src_port] = ports.get(src_port, 0) + 1

        sw = self.service_windows.get(service)
        if sw is None:
            sw = self.service_windows[service] = (deque(), _Group())
        s_entries, sg = sw
        if len(s_entries) == HOST_WINDOW:
            old_host, o_serr, o_rerr = s_entries.popleft()
            sg.add(old_host, o_serr, o_rerr, -1)
        s_entries.append((host, serr, rerr))
        sg.add(host, serr, rerr, 1)

        n, sn = g.n, sg.n
        same = g.by[service]
        return [
            n, sn, same / n, (n - same) / n, ports[src_port] / n, (sn - sg.by[host]) / sn,
            g.serror / n, sg.serror / sn, g.rerror / n, sg.rerror / sn,
        ]


def _dec(counts: dict, key) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
