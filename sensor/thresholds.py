"""Alert volume control with Suricata's semantics, in packet time.

- suppress: drop alerts whose source, destination or either address is in a CIDR.
- limit: at most `count` alerts per `seconds` per tracked key (by_src, by_dst, by_both,
  or by_rule: the class alone).
- threshold: an alert on every `count`-th event within `seconds`.
- both: one alert per `seconds`, once `count` events have been seen within it.
- detection_filter: every alert after the first `count` events within `seconds`.
A rule may also name a `flag` (the connection's state) and `land` (true or false): it then
holds only for records that match. The first rule that matches decides; other alerts pass.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter, OrderedDict
from functools import lru_cache

from feature_extractor.record import FEATURE_NAMES
from sensor.alerts import Alert

MAX_TRACKED = 100_000
_FLAG = FEATURE_NAMES.index("flag")
_LAND = FEATURE_NAMES.index("land")


SIDES = {"by_src": (0,), "by_dst": (1,), "by_either": (0, 1)}  # (source, destination)


@lru_cache(maxsize=4096)
def _address(text: str) -> tuple[int, int]:
    """(IP version, address as an integer), in a seventh of ipaddress.ip_address's time and
    cached: a flood's every alert passes here, most of them with one victim's address."""
    if ":" in text:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    return 4, int.from_bytes(socket.inet_aton(text), "big")


class AlertFilter:
    def __init__(self, thresholds: list[dict], suppress: list[dict]):
        self.thresholds = thresholds
        self.suppress = []  # (version, network as int, netmask as int, sides, class)
        for r in suppress:
            net = ipaddress.ip_network(str(r["cidr"]), strict=False)
            self.suppress.append((net.version, int(net.network_address), int(net.netmask),
                                  SIDES[r.get("track", "by_either")], r.get("class", "any")))
        self.state: OrderedDict = OrderedDict()  # (rule, key) -> [window start, events, alerts]
        self.suppressed: Counter = Counter()      # by class
        self.thresholded: Counter = Counter()

    def allow(self, alert: Alert) -> bool:
        cls = alert.attack_class
        r = alert.record
        if self.suppress and self._suppressed(cls, (r.src_ip, r.dst_ip)):
            self.suppressed[cls] += 1
            return False
        for i, rule in enumerate(self.thresholds):
            if rule.get("class", "any") not in ("any", cls) or (
                    "flag" in rule and rule["flag"] != r.features[_FLAG]) or (
                    "land" in rule and rule["land"] != bool(r.features[_LAND])):
                continue
            if self._rule_allows(i, cls, rule, r.src_ip, r.dst_ip, r.emit_ts):
                return True
            self.thresholded[cls] += 1
            return False
        return True

    def _suppressed(self, cls: str, addresses: tuple[str, str]) -> bool:
        for version, network, mask, sides, rule_class in self.suppress:
            if rule_class not in ("any", cls):
                continue
            for side in sides:
                v, address = _address(addresses[side])
                if v == version and address & mask == network:
                    return True
        return False

    def _rule_allows(self, i: int, cls: str, rule: dict, src: str, dst: str, now: float) -> bool:
        """Counted per rule, per signature (class) and per tracked address, as Suricata does."""
        track = rule["track"]
        tracked = {"by_src": src, "by_dst": dst, "by_both": (src, dst), "by_rule": None}[track]
        key = (i, cls, tracked)
        st = self.state.get(key)
        if st is None or now - st[0] >= rule["seconds"]:
            st = [now, 0, 0]
            self.state[key] = st
            if len(self.state) > MAX_TRACKED:
                self.state.popitem(last=False)
        st[1] += 1
        count = rule["count"]
        kind = rule["type"]
        if kind == "limit":
            allowed = st[1] <= count
        elif kind == "threshold":
            allowed = st[1] % count == 0
        elif kind == "detection_filter":
            allowed = st[1] > count
        else:  # both
            allowed = st[1] >= count and st[2] == 0
        if allowed:
            st[2] += 1
        return allowed
