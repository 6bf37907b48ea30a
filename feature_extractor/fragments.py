"""IP fragment reassembly, in any order, bounded in datagrams, bytes and packet time.

Bad fragments are scored as NSL-KDD's wrong_fragment shows them [data]: a datagram whose
fragments overlap (teardrop) scores 3, one that reassembles past 65,535 bytes (ping of death)
scores 1. An oversized datagram is reported from its first fragment, as the data's pod rows
(src_bytes 1480) show; the rest of it is absorbed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

OVERLAP_SCORE = 3
OVERSIZE_SCORE = 1
MAX_IP_PAYLOAD = 65535 - 20


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


@dataclass(slots=True)
class _Pending:
    first_ts: float
    pieces: list = field(default_factory=list)  # (offset, bytes, stated length)
    total: int = -1                               # payload length once the last fragment is in
    score: int = 0
    done: bool = False


class Reassembler:
    def __init__(self, max_datagrams: int = 8192, timeout: float = 30.0):
        self.max_datagrams = max_datagrams
        self.timeout = timeout
        self.pending: OrderedDict[tuple, _Pending] = OrderedDict()
        self.stats = {"fragments": 0, "reassembled": 0, "fragment_timeouts": 0,
                      "fragment_evictions": 0, "bad_fragments": 0}

    def add(self, ts: float, d: IPDatagram) -> tuple[IPDatagram, int] | None:
        """Take one fragment; return (whole datagram, wrong_fragment score) once complete."""
        self.stats["fragments"] += 1
        key = (d.version, d.src, d.dst, d.proto, d.ident)
        entry = self.pending.get(key)
        if entry is None:
            if len(self.pending) >= self.max_datagrams:
                self.pending.popitem(last=False)
                self.stats["fragment_evictions"] += 1
            entry = self.pending[key] = _Pending(ts)
        if entry.done:
            return None
        start, end = d.frag_offset, d.frag_offset + d.payload_len
        for off, _, length in entry.pieces:
            if start < off + length and end > off:
                if entry.score < OVERLAP_SCORE:
                    self.stats["bad_fragments"] += 1
                entry.score = OVERLAP_SCORE
                break
        entry.pieces.append((start, d.payload, d.payload_len))
        if not d.more_fragments:
            entry.total = end
        if end > MAX_IP_PAYLOAD:
            if entry.score == 0:
                entry.score = OVERSIZE_SCORE
                self.stats["bad_fragments"] += 1
            return self._report_first(key, entry, d)
        if entry.score == OVERSIZE_SCORE:
            return self._report_first(key, entry, d)
        return self._complete(key, entry, d)

    def _report_first(self, key, entry: _Pending, d: IPDatagram):
        first = next((p for p in entry.pieces if p[0] == 0), None)
        if first is None:
            return None
        entry.done = True
        return d._replace(frag_offset=0, more_fragments=False, payload=first[1],
                          payload_len=first[2]), entry.score

    def _complete(self, key, entry: _Pending, d: IPDatagram):
        if entry.total < 0:
            return None
        pieces = sorted(entry.pieces, key=lambda p: p[0])
        covered = 0
        for off, _, length in pieces:
            if off > covered:
                return None
            covered = max(covered, off + length)
        if covered < entry.total:
            return None
        buf = bytearray(covered)
        for off, data, _ in reversed(entry.pieces):  # the first copy of a byte wins
            buf[off:off + len(data)] = data
        del self.pending[key]
        self.stats["reassembled"] += 1
        whole = d._replace(frag_offset=0, more_fragments=False, payload=bytes(buf),
                           payload_len=covered)
        return whole, entry.score

    def expire(self, now: float) -> None:
        while self.pending:
            key, entry = next(iter(self.pending.items()))
            if entry.first_ts + self.timeout > now:
                break
            del self.pending[key]
            if not entry.done:
                self.stats["fragment_timeouts"] += 1
