"""Connections: TCP endpoint states as Zeek keeps them, sequence-space byte counts, timeouts.

Timeouts run on packet time. Each timeout class keeps its connections in an OrderedDict in
order of last activity, so expiry pops from the front and the table cap evicts the
connection idle longest, in O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from feature_extractor.content import ANALYZERS, Analyzer

# Endpoint states (Zeek's TCP_INACTIVE ... TCP_RESET).
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
FIN, SYN, RST, ACK, URG = 0x01, 0x02, 0x04, 0x10, 0x20
WELL_KNOWN = 1024


@dataclass
class Timeouts:
    """Idle timeouts in seconds of packet time."""

    tcp_attempt: float = 1.0     # no reply yet: a lone SYN becomes S0 after this long
    tcp_established: float = 300.0
    tcp_closed: float = 1.0      # after RST or both FINs, for the last ACKs and retransmissions
    udp: float = 10.0


class Connection:
    __slots__ = (
        "key", "proto", "orig_addr", "orig_port", "resp_addr", "resp_port", "start", "last",
        "orig_state", "resp_state", "orig_syn", "resp_synack", "orig_bytes", "resp_bytes",
        "orig_base", "resp_base", "orig_next", "resp_next", "urgent", "wrong_fragment",
        "orig_pkts", "resp_pkts", "orig_frame_bytes", "resp_frame_bytes", "service",
        "analyzer", "analyzer_cls", "queue", "version", "role_swap",
    )

    def __init__(self, key, proto, orig_addr, orig_port, resp_addr, resp_port, ts, service,
                 version):
        self.key = key
        self.proto = proto
        self.orig_addr, self.orig_port = orig_addr, orig_port
        self.resp_addr, self.resp_port = resp_addr, resp_port
        self.start = self.last = ts
        self.orig_state = self.resp_state = INACTIVE
        self.orig_syn = self.resp_synack = False
        self.orig_bytes = self.resp_bytes = 0
        self.orig_base = self.resp_base = -1
        self.orig_next = self.resp_next = -1
        self.urgent = self.wrong_fragment = 0
        self.orig_pkts = self.resp_pkts = 0
        self.orig_frame_bytes = self.resp_frame_bytes = 0
        self.service = service
        self.analyzer_cls = ANALYZERS.get(service)
        self.analyzer: Analyzer | None = None  # made on the first payload: floods carry none
        self.queue = None
        self.version = version
        self.role_swap = False  # recorded from the responder's side (passive FTP data)

    def tcp_flag(self) -> str:
        """The KDD flag from the two endpoint states (Zeek's conn_state)."""
        os_, rs = self.orig_state, self.resp_state
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                    os_ == RESET and self.orig_bytes == 0 and self.resp_bytes == 0):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive and self.orig_syn and not self.resp_synack:
                return "RSTOS0"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"


def tcp_update(c: Connection, from_orig: bool, flags: int, seq: int, payload: bytes,
               length: int) -> bool:
    """Apply one TCP segment; True when the connection has just closed (RST or both FINs)."""
    if flags & URG:
        c.urgent += 1
    if from_orig:
        state, peer = c.orig_state, c.resp_state
    else:
        state, peer = c.resp_state, c.orig_state
    if flags & RST:
        state = RESET
    elif flags & SYN:
        if flags & ACK:
            if not from_orig:
                c.resp_synack = True
            if state in (INACTIVE, SYN_SENT):
                state = SYN_ACK_SENT
            if peer == SYN_SENT:
                state = peer = ESTABLISHED
        else:
            if from_orig:
                c.orig_syn = True
            if state == INACTIVE:
                state = SYN_SENT
        base = (seq + 1) & 0xFFFFFFFF
        if from_orig:
            c.orig_base = c.orig_next = base
        else:
            c.resp_base = c.resp_next = base
    else:
        if flags & FIN and state != RESET:
            state = CLOSED
        elif state == INACTIVE:
            state = PARTIAL
        elif state == SYN_SENT and peer in (SYN_ACK_SENT, ESTABLISHED):
            state = peer = ESTABLISHED
        elif state == SYN_ACK_SENT and peer == ESTABLISHED:
            state = ESTABLISHED
    if from_orig:
        c.orig_state, c.resp_state = state, peer
    else:
        c.resp_state, c.orig_state = state, peer
    if length:
        _count_bytes(c, from_orig, seq, payload, length)
    return state == RESET or (c.orig_state == CLOSED and c.resp_state == CLOSED)


def _count_bytes(c: Connection, from_orig: bool, seq: int, payload: bytes, length: int) -> None:
    """Sequence-space bytes: a retransmission counts once, a gap counts as sent (as Zeek)."""
    base = c.orig_base if from_orig else c.resp_base
    if base < 0:
        base = seq
        if from_orig:
            c.orig_base = c.orig_next = seq
        else:
            c.resp_base = c.resp_next = seq
    end = (seq + length - base) & 0xFFFFFFFF
    if end >= 0x80000000:
        return
    if from_orig:
        if end > c.orig_bytes:
            c.orig_bytes = end
    elif end > c.resp_bytes:
        c.resp_bytes = end
    if c.analyzer_cls is not None:
        if c.analyzer is None:
            c.analyzer = c.analyzer_cls()
        expected = c.orig_next if from_orig else c.resp_next
        skip = (expected - seq) & 0xFFFFFFFF
        if skip < length and skip < 0x80000000:
            c.analyzer.data(from_orig, payload[skip:])
            new_next = (seq + length) & 0xFFFFFFFF
        elif skip >= 0x80000000:  # a gap: what is missing is lost to the analyzer
            c.analyzer.data(from_orig, payload)
            new_next = (seq + length) & 0xFFFFFFFF
        else:
            return
        if from_orig:
            c.orig_next = new_next
        else:
            c.resp_next = new_next


class ConnectionTable:
    """Open connections by canonical key, in one LRU queue per timeout class."""

    def __init__(self, timeouts: Timeouts, max_connections: int):
        self.timeouts = timeouts
        self.max_connections = max_connections
        self.table: dict = {}
        self.attempt: OrderedDict = OrderedDict()
        self.established: OrderedDict = OrderedDict()
        self.closed: OrderedDict = OrderedDict()
        self.udp: OrderedDict = OrderedDict()
        self.queues = ((self.attempt, timeouts.tcp_attempt),
                       (self.established, timeouts.tcp_established),
                       (self.closed, timeouts.tcp_closed),
                       (self.udp, timeouts.udp))
        self.evicted = 0
        self.expired = {"attempt": 0, "established": 0, "closed": 0, "udp": 0}

    def __len__(self) -> int:
        return len(self.table)

    def place(self, c: Connection, queue: OrderedDict) -> None:
        if c.queue is not queue:
            if c.queue is not None:
                del c.queue[c.key]
            queue[c.key] = c
            c.queue = queue
        else:
            queue.move_to_end(c.key)

    def add(self, c: Connection, queue: OrderedDict) -> Connection | None:
        """Insert a new connection; return the one evicted to make room, if any."""
        victim = None
        if len(self.table) >= self.max_connections:
            victim = self.evict_oldest()
        self.table[c.key] = c
        queue[c.key] = c
        c.queue = queue
        return victim

    def remove(self, c: Connection) -> None:
        del self.table[c.key]
        del c.queue[c.key]
        c.queue = None

    def evict_oldest(self) -> Connection | None:
        oldest = None
        for queue, _ in self.queues:
            if queue:
                c = queue[next(iter(queue))]
                if oldest is None or c.last < oldest.last:
                    oldest = c
        if oldest is not None:
            self.remove(oldest)
            self.evicted += 1
        return oldest

    def expire(self, now: float) -> list[Connection]:
        """Connections idle past their class's timeout, oldest first."""
        done: list[Connection] = []
        names = ("attempt", "established", "closed", "udp")
        for (queue, timeout), name in zip(self.queues, names, strict=True):
            horizon = now - timeout
            while queue:
                c = queue[next(iter(queue))]
                if c.last > horizon:
                    break
                queue.popitem(last=False)
                del self.table[c.key]
                c.queue = None
                self.expired[name] += 1
                done.append(c)
        done.sort(key=lambda c: c.last)
        return done

    def drain(self) -> list[Connection]:
        done = sorted(self.table.values(), key=lambda c: c.last)
        for queue, _ in self.queues:
            queue.clear()
        self.table.clear()
        return done
