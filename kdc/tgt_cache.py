"""Decrypted TGTs, by ciphertext, so a TGT is decrypted once and not on every TGS request.

A client presents the same TGT in every TGS-REQ for the ticket's lifetime (RFC 4120 §3.3),
and decrypting it is the one long-term-key operation on a TGS request's way in: under MPC a
job of about a thousand rounds, before the service ticket's encryption can start. The
ciphertext is authenticated (RFC 3961 §5.3: HMAC over the plaintext under Ki) and decryption
is deterministic, so the same (kvno, etype, ciphertext) always yields the same EncTicketPart:
serving it from here answers exactly what a new decryption would. Only ciphertexts that
verified are stored; a forged or changed one misses and goes to the key service.

The caller checks on every hit that the key version is still the krbtgt's (a key change
shows up as soon as the principal lookup shows it); a hit under any other version is
treated as a miss. What is stored is the ticket's content - client name, times and the TGT
session key - which the front-end holds anyway while it serves the request; never a
long-term key. Bounded: beyond ``max_entries`` the oldest entry goes.
"""

from __future__ import annotations

from kdc.messages.model import EncTicketPart

DEFAULT_MAX_ENTRIES = 8192


class TgtCache:
    """(kvno, etype, ciphertext) -> EncTicketPart, oldest first out."""

    __slots__ = ("max_entries", "_entries")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max(0, max_entries)
        self._entries: dict[tuple[int, int, bytes], EncTicketPart] = {}

    def __repr__(self) -> str:  # never the tickets: they hold session keys
        return f"TgtCache({len(self._entries)}/{self.max_entries} entries)"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, kvno: int, etype: int, cipher: bytes) -> EncTicketPart | None:
        return self._entries.get((kvno, etype, cipher))

    def put(self, kvno: int, etype: int, cipher: bytes, part: EncTicketPart) -> None:
        if not self.max_entries:
            return
        entries = self._entries
        if len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[(kvno, etype, bytes(cipher))] = part
