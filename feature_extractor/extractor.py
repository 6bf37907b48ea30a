"""Packets in, finished connection records with their 41 features out.

    frame -> decode -> [fragments.Reassembler] -> connection table (TCP states, bytes,
          content analyzers) -> 2 s and host windows -> ConnectionRecord / CSV row

The per-packet and per-record path is compiled (`_kernel.c`); Python keeps what is rare or
protocol-specific: fragment reassembly, the content analyzers and FTP's control/data pairing,
reached from the kernel through `_Hooks`. `packet()` takes one frame, `feed_pcap()` a buffer of
classic pcap records, `feed_batch()` a live libpcap batch; finished records wait in the kernel
until `drain()` or `drain_csv()`, snapshots of long open connections until `drain_snapshots()`.
Time is packet time: `advance()` moves it on a quiet live link, `finish()` flushes everything.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from feature_extractor._kernel import MAX_INTERIM as MAX_INTERIM  # ages the kernel keeps
from feature_extractor._kernel import Kernel
from feature_extractor.content import ANALYZERS, NO_CONTENT, FtpAnalyzer
from feature_extractor.fragments import IPDatagram, Reassembler
from feature_extractor.record import SERVICES, ConnectionRecord
from feature_extractor.services import TCP_SERVICES, UDP_SERVICES

# icmp_service's name for ICMP types NSL-KDD never shows (the encoding maps it to all zeros).
SERVICE_NAMES = (*SERVICES, "oth_i")
FTP_MEMORY = 4096  # FTP control sessions and announced data endpoints remembered
# Packets per feed_pcap call: records are drained between calls, so a flood's records never
# pile up for a whole read buffer (4 MB: 180 MB peak RSS on the 1M-source flood, 87 MB at 4096).
FEED_PACKETS = 4096


@dataclass
class Timeouts:
    """Idle timeouts in seconds of packet time."""

    tcp_attempt: float = 1.0     # no reply yet: a lone SYN becomes S0 after this long
    tcp_established: float = 300.0
    tcp_closed: float = 1.0      # after RST or both FINs, for the last ACKs and retransmissions
    udp: float = 10.0


@dataclass
class ExtractorConfig:
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_connections: int = 200_000
    max_fragmented_datagrams: int = 8192
    fragment_timeout: float = 30.0
    max_window_hosts: int = 65536
    # Ages (seconds) at which a connection still open is also snapshotted, as Zeek's
    # conn_long.log does, so that a long session is judged before it ends; the last repeats.
    # At most MAX_INTERIM of them.
    interim: tuple[float, ...] = ()


class _TableStats:
    """The connection table's counters, as the sensor's stats read them."""

    def __init__(self, kernel: Kernel):
        self._kernel = kernel

    def __len__(self) -> int:
        return self._kernel.stats()["active"]

    @property
    def evicted(self) -> int:
        return self._kernel.stats()["evicted"]

    @property
    def expired(self) -> dict:
        return self._kernel.stats()["expired"]


class _Hooks:
    """What the kernel asks of Python: fragments, FTP sessions, content features.

    Answers go back as return values: holding the kernel here would make a reference cycle
    the garbage collector cannot see through the kernel.
    """

    def __init__(self, fragments: Reassembler):
        self.fragments = fragments
        self.ftp_sessions: OrderedDict = OrderedDict()  # (client, server) -> control analyzer
        self.ftp_expected: OrderedDict = OrderedDict()  # (server, port) announced, oldest first

    def expire_fragments(self, now: float) -> bool:
        """Drop datagrams past their time; whether any remain."""
        self.fragments.expire(now)
        return bool(self.fragments.pending)

    def ftp_control(self, client: bytes, server: bytes) -> FtpAnalyzer:
        analyzer = FtpAnalyzer()
        self.ftp_sessions[(client, server)] = analyzer
        if len(self.ftp_sessions) > FTP_MEMORY:
            self.ftp_sessions.popitem(last=False)
        return analyzer

    def ftp_line(self, analyzer: FtpAnalyzer, from_orig: bool, line: bytes, complete: bool,
                 server: bytes, version: int) -> int:
        """One control-channel line; the number of announced data endpoints waiting."""
        analyzer.line(from_orig, line, complete)
        if analyzer.expected:
            for addr, port, passive in analyzer.expected:
                # a PASV reply's IPv4 address; PORT and EPRT name the client's own
                where = addr if addr and (version == 4 or not passive) else server
                self.ftp_expected[(where, port)] = passive
            analyzer.expected.clear()
            while len(self.ftp_expected) > FTP_MEMORY:
                self.ftp_expected.popitem(last=False)
        return len(self.ftp_expected)

    def take_expected(self, responder: bytes, port: int) -> int:
        """A new connection to an endpoint the control channel announced is ftp_data: 1 passive
        (PASV/EPSV, to the server), 2 active (PORT/EPRT, from the server); 0 not announced."""
        passive = self.ftp_expected.pop((responder, port), None)
        return 0 if passive is None else 1 if passive else 2

    def content(self, analyzer, ftp_data: bool, orig: bytes, resp: bytes,
                final: bool = True) -> tuple:
        """A snapshot (not `final`) leaves a half-received line for the lines after it."""
        if analyzer is None:
            values = NO_CONTENT
        else:
            values = (analyzer.result() if final else analyzer.f).values()
        if ftp_data and not values[2] and self._ftp_logged_in(orig, resp):
            values = values[:2] + (1,) + values[3:]
        return values

    def _ftp_logged_in(self, a: bytes, b: bytes) -> bool:
        """A data connection belongs to a logged-in FTP session between the same two hosts."""
        for pair in ((a, b), (b, a)):
            control = self.ftp_sessions.get(pair)
            if control is not None and control.f.logged_in:
                return True
        return False


class Extractor:
    def __init__(self, config: ExtractorConfig | None = None):
        self.config = cfg = config or ExtractorConfig()
        t = cfg.timeouts
        self.fragments = Reassembler(cfg.max_fragmented_datagrams, cfg.fragment_timeout)
        self._hooks = _Hooks(self.fragments)
        index = {name: i for i, name in enumerate(SERVICE_NAMES)}
        self._kernel = Kernel(
            (t.tcp_attempt, t.tcp_established, t.tcp_closed, t.udp), cfg.max_connections,
            cfg.max_window_hosts, SERVICE_NAMES,
            {port: index[name] for port, name in TCP_SERVICES.items()},
            {port: index[name] for port, name in UDP_SERVICES.items()},
            tuple(ANALYZERS.get(name) for name in SERVICE_NAMES), self._hooks, ConnectionRecord)
        self._kernel.set_interim(tuple(cfg.interim))
        self.table = _TableStats(self._kernel)
        self.drain = self._kernel.drain
        self.drain_snapshots = self._kernel.drain_snapshots
        self.drain_csv = self._kernel.drain_csv
        self.advance = self._kernel.advance

    # -- input ---------------------------------------------------------------------------------

    def packet(self, ts: float, linktype: int, frame: bytes) -> None:
        fragment = self._kernel.packet(ts, linktype, frame)
        if fragment is not None:
            self._fragment(*fragment)

    def feed_pcap(self, buf: bytes, pos: int, little: bool, nano: bool, linktype: int,
                  max_packets: int = FEED_PACKETS) -> int:
        """Complete records of a classic pcap buffer from pos, at most max_packets; the
        position after them."""
        start = self._kernel.packets
        while True:
            budget = max_packets - (self._kernel.packets - start)
            pos, fragment = self._kernel.feed_pcap(buf, pos, little, nano, linktype, budget)
            if fragment is None:
                return pos
            self._fragment(*fragment)

    def feed_batch(self, data: bytes, meta: bytes, linktype: int) -> None:
        """A libpcap batch: one buffer and a table of native uint32 (sec, usec, offset,
        caplen) per packet, as pcapy-ng's next_batch returns them."""
        index = 0
        while True:
            index, fragment = self._kernel.feed_batch(data, meta, index, linktype)
            if fragment is None:
                return
            self._fragment(*fragment)

    def finish(self, as_timeouts: bool = False) -> None:
        """Every open connection becomes a record: now (a stop), or at the end of a capture
        file (`as_timeouts`) each at its timeout's due time, as if silence followed."""
        self._kernel.finish(as_timeouts)

    def _fragment(self, ts: float, frame_len: int, fields: tuple) -> None:
        whole = self.fragments.add(ts, IPDatagram(*fields))
        self._kernel.set_fragments_pending(bool(self.fragments.pending))
        if whole is not None:
            d, wrong = whole
            self._kernel.datagram(ts, d.version, d.proto, d.src, d.dst, d.payload, d.payload_len,
                                  wrong, frame_len)

    # -- counters ------------------------------------------------------------------------------

    @property
    def records(self) -> int:
        """Finished records, and snapshots of open connections, waiting to be drained."""
        return self._kernel.pending()

    @property
    def packets(self) -> int:
        return self._kernel.packets

    @property
    def bytes(self) -> int:
        return self._kernel.stats()["bytes"]

    @property
    def first_ts(self) -> float | None:
        """Time of the first packet, None before any."""
        ts = self._kernel.stats()["first_ts"]
        return None if ts != ts else ts

    @property
    def skipped(self) -> Counter:
        return Counter(self._kernel.stats()["skipped"])

    @property
    def tunnelled(self) -> Counter:
        """Packets opened from a mirror tunnel (vxlan, gre, erspan) or an MPLS stack (mpls)."""
        return Counter(self._kernel.stats()["tunnelled"])

    @property
    def capture_loss(self) -> dict[str, int]:
        """TCP ACKs judged, and those acknowledging data never captured (gaps, gap_bytes)."""
        return self._kernel.stats()["capture_loss"]

    @property
    def connections(self) -> Counter:
        """Records by protocol."""
        return Counter(self._kernel.stats()["records"])
