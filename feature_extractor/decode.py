"""Link, IP and transport headers, declared as struct layouts and read with unpack_from.

Every frame ends as an IPDatagram or as the name of the reason it was skipped; the caller
counts the names. Nothing here raises on bad input.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

# (field, format) tables, one per header, in wire order.
IPV4 = struct.Struct("!BBHHHBBH4s4s")     # ver_ihl tos total_len id frag ttl proto csum src dst
IPV6 = struct.Struct("!IHBB16s16s")       # ver_tc_flow payload_len next_hdr hop_limit src dst
TCP = struct.Struct("!HHIIBBH")           # sport dport seq ack data_off flags window
UDP = struct.Struct("!HHH")               # sport dport length
ICMP = struct.Struct("!BB")               # type code
V6_FRAG = struct.Struct("!BxHI")          # next_hdr offset_flags id

ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD, ETH_PPPOE = (
    0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100, 0x8864)
ETHERTYPE_NAMES = {0x0806: "arp", 0x8035: "rarp", 0x88CC: "lldp", 0x8863: "pppoe_discovery",
                   0x888E: "eapol", 0x8847: "mpls", 0x8848: "mpls"}

LINKTYPE_NULL, LINKTYPE_LOOP = 0, 108
LINKTYPE_RAW = (101, 12, 14)
LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229
LINKTYPE_SLL, LINKTYPE_SLL2 = 113, 276
SUPPORTED_LINKTYPES = frozenset((0, 1, 12, 14, 101, 108, 113, 228, 229, 276))

V6_EXTENSIONS = frozenset((0, 43, 60, 51, 135, 139, 140))


class IPDatagram(NamedTuple):
    """One IP packet, or one fragment of one (frag_offset/more_fragments say which)."""

    version: int
    src: bytes
    dst: bytes
    proto: int
    ident: int
    frag_offset: int  # bytes
    more_fragments: bool
    payload: bytes     # IP payload as captured (possibly cut by the snap length)
    payload_len: int   # IP payload length as the header states it


def ip_datagram(linktype: int, frame: bytes) -> IPDatagram | str:
    """Strip the link layer and parse the IP header."""
    ethertype = 0
    if linktype == 1:
        if len(frame) < 14:
            return "truncated_link"
        ethertype = (frame[12] << 8) | frame[13]
        off = 14
        while ethertype in (ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD):
            if len(frame) < off + 4:
                return "truncated_link"
            ethertype = (frame[off + 2] << 8) | frame[off + 3]
            off += 4
        if ethertype == ETH_PPPOE:
            if len(frame) < off + 8:
                return "truncated_link"
            ppp = (frame[off + 6] << 8) | frame[off + 7]
            ethertype = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}.get(ppp, -1)
            off += 8
    elif linktype == LINKTYPE_SLL:
        if len(frame) < 16:
            return "truncated_link"
        ethertype = (frame[14] << 8) | frame[15]
        off = 16
    elif linktype == LINKTYPE_SLL2:
        if len(frame) < 20:
            return "truncated_link"
        ethertype = (frame[0] << 8) | frame[1]
        off = 20
    elif linktype in LINKTYPE_RAW or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        off = 0
        if not frame:
            return "truncated_link"
        ethertype = ETH_IPV4 if frame[0] >> 4 == 4 else ETH_IPV6 if frame[0] >> 4 == 6 else -1
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return "truncated_link"
        off = 4
        # NULL stores the address family in the capturing host's byte order, LOOP in network order.
        family = int.from_bytes(frame[:4], "little")
        if family > 0xFFFF:
            family = int.from_bytes(frame[:4], "big")
        ethertype = ETH_IPV4 if family == 2 else ETH_IPV6 if family in (10, 24, 28, 30) else -1
    else:
        return "unsupported_linktype"

    if ethertype == ETH_IPV4:
        return _ipv4(frame, off)
    if ethertype == ETH_IPV6:
        return _ipv6(frame, off)
    return ETHERTYPE_NAMES.get(ethertype, "other_ethertype")


def _ipv4(frame: bytes, off: int) -> IPDatagram | str:
    if len(frame) < off + 20:
        return "truncated_ip"
    ver_ihl, _, total, ident, frag, _, proto, _, src, dst = IPV4.unpack_from(frame, off)
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or total < ihl:
        return "bad_ip_header"
    if len(frame) < off + ihl:
        return "truncated_ip"
    start = off + ihl
    end = off + total
    return IPDatagram(4, src, dst, proto, ident, (frag & 0x1FFF) * 8, bool(frag & 0x2000),
                      frame[start:end], total - ihl)


def _ipv6(frame: bytes, off: int) -> IPDatagram | str:
    if len(frame) < off + 40:
        return "truncated_ip"
    vtf, plen, nxt, _, src, dst = IPV6.unpack_from(frame, off)
    if vtf >> 28 != 6:
        return "bad_ip_header"
    pos = off + 40
    end = pos + plen
    frag_offset, more, ident = 0, False, 0
    while nxt in V6_EXTENSIONS or nxt == 44:
        if len(frame) < pos + 8:
            return "truncated_ip"
        if nxt == 44:
            nxt2, offflags, ident = V6_FRAG.unpack_from(frame, pos)
            frag_offset, more = offflags & 0xFFF8, bool(offflags & 1)
            nxt, pos = nxt2, pos + 8
            continue
        hdr_len = (frame[pos + 1] + 2) * 4 if nxt == 51 else (frame[pos + 1] + 1) * 8
        nxt, pos = frame[pos], pos + hdr_len
    if pos > end:
        return "bad_ip_header"
    return IPDatagram(6, src, dst, nxt, ident, frag_offset, more, frame[pos:end], end - pos)


class Segment(NamedTuple):
    """The transport header fields the connection tracker needs."""

    sport: int
    dport: int
    flags: int       # TCP flags; 0 for UDP/ICMP
    seq: int
    payload: bytes   # transport payload as captured
    length: int      # payload length per the headers (ICMP: whole message length)


def transport(proto: int, payload: bytes, payload_len: int) -> Segment | str:
    """Parse TCP, UDP, ICMP or ICMPv6 from a (reassembled) IP payload.

    ICMP messages carry type and code in sport and dport, as Zeek does.
    """
    if proto == 6:
        if len(payload) < 20:
            return "truncated_tcp"
        sport, dport, seq, _ack, data_off, flags, _ = TCP.unpack_from(payload, 0)
        hlen = (data_off >> 4) * 4
        if hlen < 20 or hlen > payload_len:
            return "bad_tcp_header"
        return Segment(sport, dport, flags, seq, payload[hlen:], payload_len - hlen)
    if proto == 17:
        if len(payload) < 8:
            return "truncated_udp"
        sport, dport, ulen = UDP.unpack_from(payload, 0)
        if ulen < 8:
            return "bad_udp_header"
        length = min(ulen, payload_len) - 8
        return Segment(sport, dport, 0, 0, payload[8:8 + length], length)
    if proto == 1 or proto == 58:
        if len(payload) < 4:
            return "truncated_icmp"
        icmp_type, code = ICMP.unpack_from(payload, 0)
        return Segment(icmp_type, code, 0, 0, b"", payload_len)
    return "other_ip_proto"
