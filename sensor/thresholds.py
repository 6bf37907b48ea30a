"""Alert volume control with Suricata's semantics, in packet time.

- suppress: drop alerts whose source, destination or either address is in a CIDR, or
  (`link_broadcast: true`) whose originator sent to the link's broadcast address: a subnet's
  broadcasts (NetBIOS announcements) whatever its netmask, which a capture does not tell.
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

from feature_extractor.record import CLASSES, FEATURE_NAMES
from sensor.alerts import Alert

MAX_TRACKED = 100_000
_FLAG = FEATURE_NAMES.index("flag")
_LAND = FEATURE_NAMES.index("land")


SIDES = {"by_src": (0,), "by_dst": (1,), "by_either": (0, 1)}  # (source, destination)
TRACKED = {"by_src": 0, "by_dst": 1, "by_both": 2, "by_rule": 3}
ATTACKS = CLASSES[1:]
MAX_VERDICTS = 65_536


def _address(text: str) -> tuple[int, int]:
    """(IP version, address as an integer), in a seventh of ipaddress.ip_address's time."""
    if ":" in text:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    return 4, int.from_bytes(socket.inet_aton(text), "big")


class AlertFilter:
    def __init__(self, thresholds: list[dict], suppress: list[dict]):
        self.rules = [(r.get("class", "any"), r.get("flag"), r.get("land"), r["type"],
                       TRACKED[r["track"]], r["count"], r["seconds"]) for r in thresholds]
        # Per side (source, destination): the CIDRs watching it, and the classes suppressed
        # at each address seen there. A flood's every alert passes here with one victim's
        # address, so the verdict is worked out once per address.
        self.watching: tuple[list, list] = ([], [])  # (version, network, netmask, classes)
        self.on_link_broadcast: set[str] = set()  # classes suppressed on link broadcasts
        for r in suppress:
            cls = r.get("class", "any")
            classes = ATTACKS if cls == "any" else (cls,)
            if "link_broadcast" in r:
                if r["link_broadcast"]:
                    self.on_link_broadcast.update(classes)
                continue
            net = ipaddress.ip_network(str(r["cidr"]), strict=False)
            for side in SIDES[r.get("track", "by_either")]:
                self.watching[side].append((net.version, int(net.network_address),
                                            int(net.netmask), classes))
        self.verdicts: tuple[dict, dict] = ({}, {})  # address -> classes suppressed there
        self.state: OrderedDict = OrderedDict()  # (rule, class, key) -> [start, events, alerts]
        self.suppressed: Counter = Counter()      # by class
        self.thresholded: Counter = Counter()

    def allow(self, alert: Alert) -> bool:
        cls = alert.attack_class
        r = alert.record
        src_rules, dst_rules = self.watching
        if (dst_rules and cls in self._suppressed_at(1, r.dst_ip)) or (
                src_rules and cls in self._suppressed_at(0, r.src_ip)) or (
                r.link_broadcast and cls in self.on_link_broadcast):
            self.suppressed[cls] += 1
            return False
        for i, (rule_class, flag, land, kind, track, count, seconds) in enumerate(self.rules):
            if rule_class != "any" and rule_class != cls or (
                    flag is not None and flag != r.features[_FLAG]) or (
                    land is not None and land != bool(r.features[_LAND])):
                continue
            tracked = (r.src_ip, r.dst_ip, (r.src_ip, r.dst_ip), None)[track]
            if self._rule_allows((i, cls, tracked), kind, count, seconds, r.emit_ts):
                return True
            self.thresholded[cls] += 1
            return False
        return True

    def _suppressed_at(self, side: int, text: str) -> frozenset:
        verdicts = self.verdicts[side]
        classes = verdicts.get(text)
        if classes is None:
            version, address = _address(text)
            classes = frozenset(c for v, network, mask, rule_classes in self.watching[side]
                                if v == version and address & mask == network
                                for c in rule_classes)
            if len(verdicts) >= MAX_VERDICTS:
                verdicts.clear()
            verdicts[text] = classes
        return classes

    def _rule_allows(self, key: tuple, kind: str, count: int, seconds: float,
                     now: float) -> bool:
        """Counted per rule, per signature (class) and per tracked address, as Suricata does."""
        st = self.state.get(key)
        if st is None or now - st[0] >= seconds:
            st = [now, 0, 0]
            self.state[key] = st
            if len(self.state) > MAX_TRACKED:
                self.state.popitem(last=False)
        st[1] += 1
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
