"""pcap and pcapng files (and stdin), gzip-compressed or not, as a stream of (timestamp,
link type, frame bytes).

Plain struct parsing of large chunks: the fastest pure-Python way through a file (full scapy
dissection managed about 2,700 packets/s here). A damaged file yields every packet before the
damage, then raises CaptureError naming the file and the problem.
"""

from __future__ import annotations

import heapq
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

CHUNK = 1 << 22
MAX_RECORD = 1 << 18  # larger than any snap length in use; beyond it the file is corrupt

Packet = tuple[float, int, bytes]  # (timestamp, link type, frame)


class CaptureError(Exception):
    """A capture that cannot be read (further): `file: problem`."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class _Buffer:
    """Sequential reads over a file into one reused buffer; `buf` views the valid bytes.

    Reading into the same memory (readinto) instead of concatenating fresh chunks made reading
    a 60 MB capture from the page cache 3-7 times faster here (0.01 s against 0.03-0.07 s):
    fresh chunks are fresh pages, each faulted in and copied once more. The buffer (CHUNK)
    is larger than any record a valid file holds (MAX_RECORD), so it never has to grow.
    """

    __slots__ = ("fh", "data", "buf", "pos", "end", "offset")

    def __init__(self, fh: BinaryIO, head: bytes = b""):
        self.fh = fh
        self.data = bytearray(CHUNK)
        self.data[:len(head)] = head
        self.end = len(head)
        self.buf = memoryview(self.data)[:self.end]
        self.pos = 0
        self.offset = 0  # file offset of buf[0]

    def fill(self, n: int) -> bool:
        """Make n bytes available at pos; False if the file ends first."""
        if self.end - self.pos >= n:
            return True
        rest = self.end - self.pos
        self.data[:rest] = self.data[self.pos:self.end]
        self.offset += self.pos
        self.pos, self.end = 0, rest
        free = memoryview(self.data)
        while self.end < n:
            got = self.fh.readinto(free[self.end:])
            if not got:
                break
            self.end += got
        self.buf = free[:self.end]
        return self.end >= n

    def at(self) -> int:
        return self.offset + self.pos


def open_capture(path: str) -> Iterator[Packet]:
    """Packets of one capture file, or of stdin when path is '-'."""
    with _opened(path) as fh:
        buf, kind = _start(fh, path)
        yield from (_read_pcap(buf, path) if kind == "pcap" else _read_pcapng(buf, path))


def read_captures(paths: Iterable[str]) -> Iterator[Packet]:
    """Several captures merged in timestamp order."""
    paths = list(paths)
    if len(paths) == 1:
        return open_capture(paths[0])
    return heapq.merge(*(open_capture(p) for p in paths), key=lambda p: p[0])


def feed_captures(paths: Iterable[str], packet: Callable[[float, int, bytes], object],
                  feed_pcap: Callable[[bytes, int, bool, bool, int], int] | None) -> None:
    """Every packet of the captures, in timestamp order, to a consumer.

    One classic pcap file goes in whole buffers to `feed_pcap(buf, pos, little, nano,
    linktype)`, which takes complete records from pos (as many as it wants) and returns the
    position after them (the compiled path: no Python object per packet); anything else goes
    packet by packet to `packet(ts, linktype, frame)`.
    """
    paths = list(paths)
    if len(paths) != 1 or feed_pcap is None:
        for ts, linktype, frame in read_captures(paths):
            packet(ts, linktype, frame)
        return
    path = paths[0]
    with _opened(path) as fh:
        buf, kind = _start(fh, path)
        if kind == "pcapng":
            for ts, linktype, frame in _read_pcapng(buf, path):
                packet(ts, linktype, frame)
            return
        little, nano, linktype, unpack, _ = _pcap_header(buf, path)
        while True:
            buf.pos = feed_pcap(buf.buf, buf.pos, little, nano, linktype)
            if _next_pcap_record(buf, path, unpack) is None:
                return


@contextmanager
def _opened(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield _uncompressed(sys.stdin.buffer, path)
        return
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise CaptureError(path, exc.strerror or str(exc)) from None
    with fh:
        yield _uncompressed(fh, path)


def _uncompressed(fh, path: str) -> BinaryIO:
    """Captures are often kept as .pcap.gz, which tshark reads too; told apart by content."""
    return _Gunzip(fh, path) if fh.peek(2)[:2] == b"\x1f\x8b" else fh


class _Gunzip:
    """A gzip stream (members one after another, as `cat a.gz b.gz` makes) read in steps, so
    that damage, as in a plain file, ends the capture with a CaptureError after every packet
    before it."""

    STEP = 1 << 16

    def __init__(self, fh: BinaryIO, path: str):
        self.fh, self.path = fh, path
        self.z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.member_started = False
        self.out = bytearray()
        self.damage = ""
        self.ended = False

    def read(self, n: int) -> bytes:
        got = bytearray(n)
        return bytes(got[:self.readinto(got)])

    def readinto(self, b) -> int:
        want = len(b)
        while len(self.out) < want and not self.ended:
            self._step()
        if not self.out and self.damage:
            raise CaptureError(self.path, self.damage)
        k = min(want, len(self.out))
        b[:k] = self.out[:k]
        del self.out[:k]
        return k

    def _step(self) -> None:
        data = self.fh.read(self.STEP)
        if not data:
            self.ended = True
            if self.member_started and not self.z.eof:
                self.damage = "gzip data cut short"
            return
        try:
            while data:
                self.member_started = True
                self.out += self.z.decompress(data)
                if not self.z.eof:
                    break
                data = self.z.unused_data
                self.z = zlib.decompressobj(zlib.MAX_WBITS | 16)
                self.member_started = False
        except zlib.error as exc:
            self.ended = True
            self.damage = f"gzip data damaged ({exc})"


def _start(fh: BinaryIO, path: str) -> tuple[_Buffer, str]:
    head = fh.read(4)
    if len(head) < 4:
        raise CaptureError(path, "empty or too short to be a capture file")
    if head in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return _Buffer(fh, head), "pcap"
    if head == b"\x0a\x0d\x0d\x0a":
        return _Buffer(fh, head), "pcapng"
    raise CaptureError(path, "not a pcap or pcapng file (unknown magic number)")


def _pcap_header(buf: _Buffer, path: str):
    if not buf.fill(24):
        raise CaptureError(path, "truncated pcap file header")
    little = buf.buf[0] in (0xD4, 0x4D)
    nano = buf.buf[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")  # either byte order
    e = "<" if little else ">"
    linktype = struct.unpack_from(e + "I", buf.buf, 20)[0] & 0x0FFFFFFF
    buf.pos = 24
    return little, nano, linktype, struct.Struct(e + "IIII").unpack_from, 1e-9 if nano else 1e-6


def _next_pcap_record(buf: _Buffer, path: str, unpack) -> tuple | None:
    """The header of the record at pos, with the whole record buffered; None at a clean end."""
    if not buf.fill(16):
        if len(buf.buf) - buf.pos:
            raise CaptureError(path, f"truncated packet header at byte {buf.at()}")
        return None
    header = unpack(buf.buf, buf.pos)
    if header[2] > MAX_RECORD:
        raise CaptureError(path, f"corrupt packet record (length {header[2]}) at byte {buf.at()}")
    if not buf.fill(16 + header[2]):
        raise CaptureError(path, f"truncated packet data at byte {buf.at()}")
    return header


def _read_pcap(buf: _Buffer, path: str) -> Iterator[Packet]:
    _, _, linktype, unpack, scale = _pcap_header(buf, path)
    while True:
        header = _next_pcap_record(buf, path, unpack)
        if header is None:
            return
        sec, frac, incl, _orig = header
        start = buf.pos + 16
        buf.pos = start + incl
        yield sec + frac * scale, linktype, bytes(buf.buf[start:start + incl])


def _read_pcapng(buf: _Buffer, path: str) -> Iterator[Packet]:
    e = "<"
    interfaces: list[tuple[int, float]] = []  # (link type, seconds per timestamp unit)
    last_ts = 0.0
    while True:
        if not buf.fill(12):
            if len(buf.buf) - buf.pos:
                raise CaptureError(path, f"truncated block header at byte {buf.at()}")
            return
        raw_type = buf.buf[buf.pos:buf.pos + 4]
        if raw_type == b"\x0a\x0d\x0d\x0a":
            bom = buf.buf[buf.pos + 8:buf.pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                e = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                e = ">"
            else:
                raise CaptureError(path, f"bad pcapng byte-order magic at byte {buf.at()}")
            interfaces = []
        btype, blen = struct.unpack_from(e + "II", buf.buf, buf.pos)
        if blen < 12 or blen % 4 or blen > MAX_RECORD + 64:
            raise CaptureError(path, f"corrupt pcapng block (length {blen}) at byte {buf.at()}")
        if not buf.fill(blen):
            raise CaptureError(path, f"truncated pcapng block at byte {buf.at()}")
        body = buf.pos + 8
        end = buf.pos + blen - 4
        data = buf.buf
        buf.pos += blen
        if btype == 6:  # enhanced packet block
            iface, hi, lo, caplen = struct.unpack_from(e + "IIII", data, body)
            if iface >= len(interfaces) or body + 20 + caplen > end:
                raise CaptureError(path, f"corrupt enhanced packet block at byte {buf.at() - blen}")
            linktype, unit = interfaces[iface]
            last_ts = ((hi << 32) | lo) * unit
            yield last_ts, linktype, bytes(data[body + 20:body + 20 + caplen])
        elif btype == 3:  # simple packet block: interface 0, no timestamp
            if not interfaces:
                raise CaptureError(path, "simple packet block before any interface")
            (orig,) = struct.unpack_from(e + "I", data, body)
            caplen = min(orig, end - body - 4)
            yield last_ts, interfaces[0][0], bytes(data[body + 4:body + 4 + caplen])
        elif btype == 2:  # obsolete packet block
            iface, _drops, hi, lo, caplen = struct.unpack_from(e + "HHIII", data, body)
            if iface >= len(interfaces) or body + 20 + caplen > end:
                raise CaptureError(path, f"corrupt packet block at byte {buf.at() - blen}")
            linktype, unit = interfaces[iface]
            last_ts = ((hi << 32) | lo) * unit
            yield last_ts, linktype, bytes(data[body + 20:body + 20 + caplen])
        elif btype == 1:  # interface description
            linktype = struct.unpack_from(e + "H", data, body)[0]
            interfaces.append((linktype, _tsresol(data, body + 8, end, e)))


def _tsresol(data: bytes, pos: int, end: int, e: str) -> float:
    """if_tsresol option of an interface block (default microseconds)."""
    while pos + 4 <= end:
        code, length = struct.unpack_from(e + "HH", data, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = data[pos + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        pos += 4 + ((length + 3) & ~3)
    return 1e-6
