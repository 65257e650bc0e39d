"""Retransmit (lookaside) cache: an identical request is answered with the previous reply.

A UDP client that hears nothing within a second sends the same bytes again (MIT sends to each
KDC in turn, then repeats). Without this cache every retransmit would cost a second MPC
evaluation and, for AS requests, issue a second ticket. Like MIT ``kdc/replay.c`` the key is
the whole request (peer not included), entries expire after a short time and the cache is
bounded; unlike MIT, a retransmit that arrives while the first copy is still being processed
waits for that result instead of being dropped, so it costs nothing and still gets an answer.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from kdc.realm import DEFAULT_LOOKASIDE_BYTES, DEFAULT_LOOKASIDE_ENTRIES, DEFAULT_LOOKASIDE_TTL


@dataclass(slots=True)
class _Entry:
    expires: float
    reply: bytes | None = None
    pending: asyncio.Future | None = None
    size: int = 0


@dataclass(slots=True)
class LookasideStats:
    hits: int = 0
    waits: int = 0
    misses: int = 0
    inserts: int = 0
    evictions: int = 0
    extra: dict = field(default_factory=dict)


class Lookaside:
    """Bounded cache ``request bytes -> reply bytes`` with a time-to-live.

    ``now`` is always passed in (the KDC core's injected clock), so tests control expiry.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_LOOKASIDE_TTL,
        max_entries: int = DEFAULT_LOOKASIDE_ENTRIES,
        max_bytes: int = DEFAULT_LOOKASIDE_BYTES,
    ) -> None:
        self.ttl = float(ttl)
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._bytes = 0
        self.stats = LookasideStats()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def lookup(self, request: bytes, now: float) -> bytes | asyncio.Future | None:
        """The cached reply, a future for a request still in progress, or None."""
        entry = self._entries.get(request)
        if entry is None:
            self.stats.misses += 1
            return None
        if entry.pending is not None:
            self.stats.waits += 1
            return entry.pending
        if entry.expires <= now:
            self._remove(request)
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return entry.reply

    def begin(self, request: bytes, now: float) -> asyncio.Future | None:
        """Mark ``request`` as in progress; duplicates arriving meanwhile await the future.

        Returns None (and tracks nothing) when the cache is disabled or the request alone is
        larger than the byte bound.
        """
        if self.max_entries <= 0 or len(request) > self.max_bytes:
            return None
        self._expire(now)
        fut = asyncio.get_running_loop().create_future()
        self._put(request, _Entry(expires=now + self.ttl, pending=fut, size=len(request)))
        return fut

    def finish(
        self, request: bytes, future: asyncio.Future | None, reply: bytes | None, now: float,
        *, cache: bool = True,
    ) -> None:
        """Resolve the in-progress entry: keep ``reply`` for ``ttl`` if ``cache``, else drop it.

        Waiters get ``reply`` either way (a transient error is not remembered, but the copies
        that arrived during processing still get the same answer).
        """
        if future is None:
            return
        if not future.done():
            future.set_result(reply)
        entry = self._entries.get(request)
        if entry is None or entry.pending is not future:
            return
        if not cache or reply is None:
            self._remove(request)
            return
        self._bytes -= entry.size
        entry.pending = None
        entry.reply = reply
        entry.expires = now + self.ttl
        entry.size = len(request) + len(reply)
        self._bytes += entry.size
        self._entries.move_to_end(request)
        self.stats.inserts += 1
        self._shrink()

    def clear(self) -> None:
        for entry in self._entries.values():
            if entry.pending is not None and not entry.pending.done():
                entry.pending.set_result(None)
        self._entries.clear()
        self._bytes = 0

    # -- internals ------------------------------------------------------------------------

    def _put(self, request: bytes, entry: _Entry) -> None:
        old = self._entries.pop(request, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[request] = entry
        self._bytes += entry.size
        self._shrink()

    def _remove(self, request: bytes) -> None:
        entry = self._entries.pop(request, None)
        if entry is not None:
            self._bytes -= entry.size

    def _expire(self, now: float) -> None:
        # Entries are kept in insertion order and share one ttl, so expired ones are in front
        # (in-progress entries are never expired here; finish() always resolves them).
        while self._entries:
            request, entry = next(iter(self._entries.items()))
            if entry.pending is not None or entry.expires > now:
                break
            self._remove(request)

    def _shrink(self) -> None:
        while self._entries and (
            len(self._entries) > self.max_entries or self._bytes > self.max_bytes
        ):
            request, entry = next(iter(self._entries.items()))
            if entry.pending is not None and not entry.pending.done():
                # Evicting an in-progress entry only loses the chance to coalesce duplicates.
                entry.pending.set_result(None)
            self._remove(request)
            self.stats.evictions += 1
