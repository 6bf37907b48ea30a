"""Community ID v1 flow hashing (corelight/community-id-spec), so alerts pivot to Zeek/Suricata."""

from __future__ import annotations

import binascii
import hashlib
import socket
import struct

# ICMP type pairs that form a request/response "flow" (the spec's port equivalents).
_ICMP4 = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6 = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
          144: 145, 145: 144}


def flow_key(src: str, dst: str, proto: int, sport: int, dport: int, seed: int = 0) -> bytes:
    """The bytes Community ID hashes: seed, addresses, proto, 0, ports in canonical order.

    For ICMP/ICMPv6, sport is the type and dport the code, as in Zeek and Suricata.
    """
    if ":" in src:
        saddr = socket.inet_pton(socket.AF_INET6, src)
        daddr = socket.inet_pton(socket.AF_INET6, dst)
    else:
        saddr = socket.inet_aton(src)
        daddr = socket.inet_aton(dst)
    one_way = False
    if proto in (1, 58):
        table = _ICMP4 if proto == 1 else _ICMP6
        if sport in table:
            dport = table[sport]
        else:
            one_way = True
    if not one_way and (saddr, sport) > (daddr, dport):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    return struct.pack("!H", seed) + saddr + daddr + struct.pack("!BBHH", proto, 0, sport, dport)


def community_id_of(key: bytes) -> str:
    return "1:" + binascii.b2a_base64(hashlib.sha1(key).digest(), newline=False).decode("ascii")


def community_id(src: str, dst: str, proto: int, sport: int, dport: int, seed: int = 0) -> str:
    """`1:` + base64(sha1(flow_key(...)))."""
    return community_id_of(flow_key(src, dst, proto, sport, dport, seed))
