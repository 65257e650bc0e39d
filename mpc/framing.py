"""Length-prefixed frames on every MPC link (node-node and client-node), over TLS.

Frame header, 24 bytes, little-endian (``struct`` format ``<HBBIQQ``)::

    offset size field
    0      2    magic     0x4B4D ("MK" on the wire: 4D 4B)
    2      1    kind      one of the ``KIND_*`` constants below
    3      1    flags     0 (reserved)
    4      4    round     u32: link round (BUNDLE) or 0
    8      8    batch_id  u64: job/batch id (client frames) or 0 (BUNDLE)
    16     8    length    u64: number of body bytes that follow

Node-to-node rounds use ONE ``BUNDLE`` frame per link per round. Its body is::

    u32 count | u32 0 | count x section entry | payload_0 | payload_1 | ...
    section entry (24 bytes, <QIIQ): batch_id u64 | round u32 | 0 u32 | nbytes u64

``payload_k`` is the raw little-endian uint64 z-share array of section k (``nbytes`` bytes)
for AND layer ``round`` of batch ``batch_id``: the lockstep label (batch, round) that every
node computes identically (the MPyC program-counter idea), so no coordination message is ever
needed; the receiver routes each payload to its batch by label.

Frames of up to 64 KiB of payload are sent as one buffer (one TLS record batch); larger
payloads follow the header+table as separate buffers without a copy. The receiver
(:class:`BufferedReader`) reads a frame's body into one array and hands out each section
as a view into it (one allocation and copy per frame, not per section).

Client frames (kinds ``JOB`` ... ``DIGESTS``) carry a body laid out by :mod:`mpc.jobs`.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

MAGIC = 0x4B4D
HEADER = struct.Struct("<HBBIQQ")
SECTION = struct.Struct("<QIIQ")
COUNT = struct.Struct("<II")

KIND_BUNDLE = 1
KIND_JOB = 10
KIND_RESULT = 11
KIND_ERROR = 12
KIND_STORE = 13
KIND_STORED = 14
KIND_ABORT = 15
KIND_DEBUG = 16
KIND_DIGESTS = 17
KIND_PING = 18
KIND_PONG = 19
KIND_DELETE = 20

MAX_PEER_FRAME = 1 << 31
MAX_CLIENT_FRAME = 1 << 28
MAX_SECTIONS = 1 << 16


class FrameError(Exception):
    """A malformed or oversized frame; the link carrying it is closed."""


class LinkClosed(ConnectionError):
    """The peer closed the connection (EOF)."""


class Header(NamedTuple):
    kind: int
    round: int
    batch_id: int
    length: int


def pack_header(kind: int, length: int, *, batch_id: int = 0, round: int = 0) -> bytes:
    return HEADER.pack(MAGIC, kind, 0, round, batch_id, length)


def unpack_header(data: bytes | memoryview | bytearray, max_length: int,
                  offset: int = 0) -> Header:
    """The frame header at ``data[offset:]`` (FrameError if bad or longer than allowed)."""
    return Header(*_header_fields(data, max_length, offset))


def _header_fields(data, max_length: int, offset: int) -> tuple[int, int, int, int]:
    """(kind, round, batch_id, length) of the checked header at ``data[offset:]``."""
    magic, kind, flags, rnd, batch_id, length = HEADER.unpack_from(data, offset)
    if magic != MAGIC or flags != 0:
        raise FrameError("bad frame magic")
    if length > max_length:
        raise FrameError(f"frame of {length} bytes exceeds limit {max_length}")
    return kind, rnd, batch_id, length


def recv_exactly_into(sock, view: memoryview) -> None:
    """Fill ``view`` from a blocking (TLS) socket; LinkClosed on EOF."""
    got = 0
    n = len(view)
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise LinkClosed("peer closed the connection")
        got += k


def recv_exactly(sock, n: int) -> bytearray:
    buf = bytearray(n)
    recv_exactly_into(sock, memoryview(buf))
    return buf


def read_header(sock, max_length: int) -> Header:
    return unpack_header(recv_exactly(sock, HEADER.size), max_length)


def bundle_buffers(round_no: int, sections: list[tuple[int, int, np.ndarray]]) -> list:
    """The buffers of one BUNDLE frame: header+table in one bytes object, then each payload.

    ``sections`` are ``(batch_id, round, z)`` with z a uint64 array; C-contiguous payloads
    are passed as they are (no copy: the buffer protocol gives their bytes).
    """
    count = len(sections)
    fields: list[int] = [count, 0]
    payloads = []
    total = 0
    for batch_id, rnd, z in sections:
        if not z.flags.c_contiguous:
            z = np.ascontiguousarray(z)
        n = z.nbytes
        fields += (batch_id, rnd, 0, n)
        payloads.append(z)
        total += n
    table = _table_struct(count).pack(*fields)
    head = HEADER.pack(MAGIC, KIND_BUNDLE, 0, round_no, 0, len(table) + total) + table
    if total <= 65536:  # small frame: one buffer, one TLS record
        return [b"".join([head, *payloads])]
    return [head, *payloads]


_TABLES: dict[int, struct.Struct] = {}


def _table_struct(count: int) -> struct.Struct:
    """``COUNT`` followed by ``count`` ``SECTION`` entries, as one Struct (cached)."""
    st = _TABLES.get(count)
    if st is None:
        st = struct.Struct("<II" + "QIIQ" * count)
        if count <= 256:
            _TABLES[count] = st
    return st


class BufferedReader:
    """Frame reader for one blocking (TLS) socket with a reusable receive buffer.

    A small frame usually arrives as one TLS record, so one ``recv_into`` fetches header,
    table and payloads together; large payloads are received straight into their numpy
    arrays. Fewer calls per round is most of what a round costs in Python.
    """

    def __init__(self, sock, size: int = 1 << 17) -> None:
        self.sock = sock
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0

    def _fill(self, need: int) -> None:
        """Ensure at least ``need`` (<= buffer size) bytes are buffered."""
        if self.end - self.start >= need:
            return
        if self.start:
            n = self.end - self.start
            self.view[:n] = self.view[self.start:self.end]
            self.start, self.end = 0, n
        while self.end < need:
            k = self.sock.recv_into(self.view[self.end:])
            if k == 0:
                raise LinkClosed("peer closed the connection")
            self.end += k

    def take(self, n: int) -> memoryview:
        """The next n buffered bytes (valid until the next call)."""
        if n > len(self.buf):
            raise FrameError("field larger than the receive buffer")
        self._fill(n)
        v = self.view[self.start:self.start + n]
        self.start += n
        return v

    def read_into(self, out: memoryview) -> None:
        n = len(out)
        have = min(n, self.end - self.start)
        out[:have] = self.view[self.start:self.start + have]
        self.start += have
        if have < n:
            if n - have >= len(self.buf) // 2:
                recv_exactly_into(self.sock, out[have:])
            else:
                self._fill(n - have)
                out[have:] = self.view[self.start:self.start + n - have]
                self.start += n - have

    def header(self, max_length: int) -> Header:
        if self.end - self.start < HEADER.size:
            self._fill(HEADER.size)
        start = self.start
        self.start += HEADER.size  # consumed even if it is refused
        return unpack_header(self.buf, max_length, start)

    def next_bundle(self) -> list[tuple[int, int, np.ndarray]]:
        """The next frame, which must be a BUNDLE: :meth:`header` and :meth:`bundle` in one
        call (a peer link reads nothing else; this is every round's path)."""
        if self.end - self.start < HEADER.size:
            self._fill(HEADER.size)
        start = self.start
        self.start += HEADER.size  # consumed even if it is refused
        kind, _, _, length = _header_fields(self.buf, MAX_PEER_FRAME, start)
        if kind != KIND_BUNDLE:
            raise FrameError("unexpected frame kind on a peer link")
        return self._bundle_body(length)

    def bundle(self, header: Header) -> list[tuple[int, int, np.ndarray]]:
        """The body of a BUNDLE frame: ``[(batch_id, round, z_flat_uint64), ...]``.

        The body is read into one fresh array and every z is a view into it: one copy out
        of the receive buffer per frame, not one allocation per section.
        """
        return self._bundle_body(header.length)

    def _bundle_body(self, length: int) -> list[tuple[int, int, np.ndarray]]:
        if length % 8 or length < COUNT.size:
            raise FrameError("bundle length not a multiple of 8")
        body = np.empty(length >> 3, dtype=np.uint64)
        raw = memoryview(body).cast("B")
        self.read_into(raw)
        count = COUNT.unpack_from(raw)[0]
        if count > MAX_SECTIONS:
            raise FrameError("too many sections")
        pos = COUNT.size + SECTION.size * count
        if pos > length:
            raise FrameError("bundle length mismatch")
        out = []
        pos >>= 3
        for batch_id, rnd, _, nbytes in SECTION.iter_unpack(raw[COUNT.size:pos << 3]):
            if nbytes & 7:
                raise FrameError("section length not a multiple of 8")
            end = pos + (nbytes >> 3)
            out.append((batch_id, rnd, body[pos:end]))
            pos = end
        if pos << 3 != length:
            raise FrameError("bundle length mismatch")
        return out
