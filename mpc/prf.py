"""Correlated randomness from shared PRF keys (Araki et al. 2016 §2.1).

There are three PRF keys k_0, k_1, k_2; party i holds k_i and k_{i+1} (so k_j is known to
parties j-1 and j, never to party j+1). F(k, label) is AES-128-CTR (or AES-256 for 32-byte keys)
from ``cryptography``, keyed by k, with the 16-byte initial counter block derived from the label:

    bytes 0..7   batch_id  (uint64, big-endian)
    bytes 8..10  round     (uint24, big-endian)
    byte  11     purpose   (PURPOSE_ZERO for AND zero-shares, PURPOSE_RANDOM for random sharings)
    bytes 12..15 block counter, starting at 0 (2^32 blocks = 64 GiB per label)

so streams of different labels never overlap and every party computes the same stream for the
same (batch_id, round, purpose) without exchanging a message (lockstep labels, as MPyC's
program counter). Output bytes are read as little-endian uint64 words. Each thread keeps one
CTR context per key and restarts it at each label's counter block (``reset_nonce``): the same
keystream as a fresh context, without its set-up cost per round (with older cryptography,
short streams come from the same counter blocks under a reused AES-ECB context instead).

Many short streams (small AND layers) are drawn at once
(:meth:`PartyRandomness.zero_share_window`): the counter blocks of several labels are built in
numpy and encrypted with one AES-ECB call per key, which yields exactly each label's CTR
keystream.

* zero-sharing: alpha_i = F(k_i, label) ^ F(k_{i+1}, label); alpha_0 ^ alpha_1 ^ alpha_2 = 0.
* random sharing: x_j = F(k_j, label); party i holds (x_i, x_{i+1}) of r = x_0 ^ x_1 ^ x_2,
  which no single party knows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PURPOSE_ZERO = 0
PURPOSE_RANDOM = 1

MAX_BATCH_ID = (1 << 64) - 1
MAX_ROUND = (1 << 24) - 1
KEY_BYTES = 16
MAX_LABEL_BYTES = 16 << 32  # the 32-bit block counter must not carry into the label


def label_nonce(batch_id: int, round_: int, purpose: int) -> bytes:
    """The initial AES-CTR counter block for one label (layout in the module docstring)."""
    if not 0 <= batch_id <= MAX_BATCH_ID:
        raise ValueError("batch_id out of range (uint64)")
    if not 0 <= round_ <= MAX_ROUND:
        raise ValueError("round out of range (uint24)")
    if not 0 <= purpose <= 255:
        raise ValueError("purpose out of range (uint8)")
    return batch_id.to_bytes(8, "big") + round_.to_bytes(3, "big") + bytes([purpose]) + bytes(4)


_ZERO_CACHE: dict[int, np.ndarray] = {}


def _zeros(nbytes: int) -> memoryview:
    """A read-only zero buffer of at least nbytes (shared, never written)."""
    size = 1 << max(12, (nbytes - 1).bit_length())
    buf = _ZERO_CACHE.get(size)
    if buf is None:
        buf = np.zeros(size, dtype=np.uint8)
        buf.flags.writeable = False
        if size <= 1 << 26:
            _ZERO_CACHE[size] = buf
    return memoryview(buf)[:nbytes]


def _flat_bytes(out: np.ndarray) -> np.ndarray:
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("PRF output buffer must be a writeable C-contiguous array")
    return out.reshape(-1).view(np.uint8)


def prf_into(key: bytes, nonce: bytes, out: np.ndarray) -> None:
    """Fill ``out`` (C-contiguous uint64) with the AES-CTR keystream for (key, nonce)."""
    flat = _flat_bytes(out)
    if flat.nbytes > MAX_LABEL_BYTES:
        raise ValueError("one label's stream is limited to 2^32 AES blocks")
    encryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    # Keystream = encryption of zeros; update_into writes straight into the caller's buffer.
    zeros = _zeros(flat.nbytes)
    try:
        encryptor.update_into(zeros, flat)
    except ValueError:  # older cryptography wants block_size - 1 bytes of slack
        flat[:] = np.frombuffer(encryptor.update(zeros), dtype=np.uint8)


# Without CTR reset_nonce (cryptography < 43): below this many AES blocks, building the counter
# blocks ourselves and encrypting them with a reused AES-ECB context beats creating a CTR
# context per call (about 8 us of Python overhead); above it OpenSSL's pipelined CTR is faster.
# Both give the same keystream.
SMALL_BLOCKS = 1024


class _EcbKeystream:
    """Per-thread AES-ECB context and buffers for short keystreams of one key.

    The counter blocks nonce[0:12] || uint32 big-endian block index are exactly CTR mode's
    (the nonce's last four bytes are zero): the index column is written once, only the
    12-byte label prefix changes per call.
    """

    def __init__(self, key: bytes) -> None:
        self.encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self.blocks = np.zeros((SMALL_BLOCKS, 4), dtype=np.uint32)
        self.blocks[:, 3] = np.arange(SMALL_BLOCKS, dtype=">u4").view(np.uint32)
        self.block_bytes = memoryview(self.blocks.reshape(-1).view(np.uint8))
        # update_into wants block_size - 1 bytes of slack after the output.
        self.out = np.empty(16 * SMALL_BLOCKS + 16, dtype=np.uint8)

    def fill(self, nonce: bytes, flat: np.ndarray) -> None:
        nblocks = (flat.nbytes + 15) >> 4
        self.blocks[:nblocks, :3] = np.frombuffer(nonce, dtype=np.uint32, count=3)
        self.encryptor.update_into(self.block_bytes[: 16 * nblocks], self.out)
        flat[:] = self.out[: flat.nbytes]


class _CtrKeystream:
    """Per-thread AES-CTR context of one key, re-pointed at each label's counter block.

    ``reset_nonce`` (cryptography >= 43) restarts the same context at a new initial counter
    block: the keystream is exactly that of a fresh ``Cipher(AES(key), CTR(nonce))``, without
    the ~15 us of Python and key-schedule set-up per call (two calls per round per batch).
    """

    def __init__(self, key: bytes) -> None:
        self.encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
        self.reset = getattr(self.encryptor, "reset_nonce", None)
        self.key = key

    def __repr__(self) -> str:
        return "_CtrKeystream(<redacted>)"

    def fill(self, nonce: bytes, flat: np.ndarray) -> None:
        if self.reset is None:  # older cryptography: a fresh context per label
            prf_into(self.key, nonce, flat)
            return
        self.reset(nonce)
        self.encryptor.update_into(_zeros(flat.nbytes), flat)


def counter_blocks(batch_id: int, first_round: int, purpose: int,
                   block_counts: np.ndarray) -> np.ndarray:
    """The AES-CTR counter blocks of labels (batch_id, first_round + k, purpose), label k
    contributing ``block_counts[k]`` blocks from block index 0, in order: an array of shape
    (total, 2) of big-endian uint64 (the 16-byte layout of :func:`label_nonce` plus the
    block index). Each label's count must stay below 2^32 (the block counter's range)."""
    counts = np.asarray(block_counts, dtype=np.uint64)
    if counts.size and int(counts.max()) >= 1 << 32:
        raise ValueError("one label's stream is limited to 2^32 AES blocks")
    ends = np.cumsum(counts, dtype=np.uint64)
    total = int(ends[-1]) if counts.size else 0
    out = np.empty((total, 2), dtype=">u8")
    out[:, 0] = batch_id
    # Low word: round << 40 | purpose << 32 | block index within the label, built as
    # (label base - label start) + running index, in wrapping uint64 arithmetic.
    rounds = np.arange(first_round, first_round + counts.shape[0], dtype=np.uint64)
    base = (rounds << np.uint64(40)) | np.uint64(purpose << 32)
    base -= ends - counts
    out[:, 1] = np.repeat(base, counts.astype(np.intp)) + np.arange(total, dtype=np.uint64)
    return out


class BatchIdReused(ValueError):
    """A batch id was claimed twice under the same PRF keys."""


class PartyRandomness:
    """Party i's two PRF keys (k_i, k_{i+1}). Stateless apart from the keys, so many batches
    (PartyEvaluations) can share one instance; thread-safe.

    Security: a label must never be used for two different evaluations under the same keys.
    If two evaluations shared (batch_id, round), party i-1 could XOR the two z_i it receives
    and cancel alpha_i, learning a relation between party i's shares. Callers either pick
    batch ids that never repeat (e.g. 63 random bits, or a persistent counter) or let
    :meth:`claim_batch` refuse repeats within this object's lifetime.
    """

    __slots__ = ("_key_own", "_key_next", "_local", "_claimed", "_lock")

    def __init__(self, key_own: bytes, key_next: bytes) -> None:
        for k in (key_own, key_next):
            if not isinstance(k, bytes | bytearray) or len(k) not in (16, 32):
                raise ValueError("PRF keys must be 16 or 32 bytes")
        self._key_own = bytes(key_own)
        self._key_next = bytes(key_next)
        self._local = threading.local()  # ECB contexts are per thread
        self._claimed: set[int] = set()
        self._lock = threading.Lock()

    def claim_batch(self, batch_id: int) -> None:
        """Record that ``batch_id`` is in use; raise :class:`BatchIdReused` if it was claimed
        before by this object (memory: one set entry per claimed batch)."""
        label_nonce(batch_id, 0, PURPOSE_ZERO)  # range check
        with self._lock:
            if batch_id in self._claimed:
                raise BatchIdReused(f"batch id {batch_id} was already used with these PRF keys")
            self._claimed.add(batch_id)

    def _stream_into(self, own: bool, nonce: bytes, out: np.ndarray) -> None:
        flat = _flat_bytes(out)
        ctr = getattr(self._local, "ctr", None)
        if ctr is None:
            ctr = self._local.ctr = (_CtrKeystream(self._key_own),
                                     _CtrKeystream(self._key_next))
        # With reset_nonce the CTR context is the fastest path at every size (4 us instead
        # of 5.5 us for two 512-byte streams); the ECB path below only serves older versions.
        if ctr[0].reset is not None or flat.nbytes > 16 * SMALL_BLOCKS:
            if flat.nbytes > MAX_LABEL_BYTES:
                raise ValueError("one label's stream is limited to 2^32 AES blocks")
            ctr[0 if own else 1].fill(nonce, flat)
            return
        streams = getattr(self._local, "streams", None)
        if streams is None:
            streams = self._local.streams = (
                _EcbKeystream(self._key_own),
                _EcbKeystream(self._key_next),
            )
        streams[0 if own else 1].fill(nonce, flat)

    def __repr__(self) -> str:
        return "PartyRandomness(<redacted>)"

    def zero_share_window(self, batch_id: int, first_round: int, block_counts: np.ndarray,
                          out_own: np.ndarray, out_next: np.ndarray) -> None:
        """The zero-share streams of several consecutive labels in two AES calls.

        Label k = (batch_id, first_round + k, PURPOSE_ZERO) gets ``block_counts[k]`` AES
        blocks; its F(k_i, label) is ``out_own`` at byte ``16 * sum(block_counts[:k])`` (and
        F(k_{i+1}, label) the same place in ``out_next``), exactly the AES-CTR keystream of
        that label (the counter blocks of every label are built at once and encrypted with
        ECB, which is what CTR does block by block). For many small AND layers this replaces
        two cipher calls per layer, mostly Python overhead, by two per window.
        ``out_*`` are writeable C-contiguous arrays of at least ``16 * total + 15`` bytes
        (AES ``update_into`` wants a block of slack).
        """
        counts = np.asarray(block_counts, dtype=np.uint64)
        k = counts.shape[0]
        label_nonce(batch_id, first_round, PURPOSE_ZERO)  # range checks
        if k == 0:
            return
        if first_round + k - 1 > MAX_ROUND:
            raise ValueError("round out of range (uint24)")
        counters = counter_blocks(batch_id, first_round, PURPOSE_ZERO, counts)
        own, nxt = _flat_bytes(out_own), _flat_bytes(out_next)
        if own.nbytes < counters.nbytes + 15 or nxt.nbytes < counters.nbytes + 15:
            raise ValueError("PRF window output buffers too small")
        ecb = getattr(self._local, "ecb", None)
        if ecb is None:
            ecb = self._local.ecb = tuple(Cipher(algorithms.AES(k), modes.ECB()).encryptor()
                                          for k in (self._key_own, self._key_next))
        data = memoryview(counters).cast("B")
        ecb[0].update_into(data, own)
        ecb[1].update_into(data, nxt)

    def zero_share_streams(
        self, batch_id: int, round_: int, out_own: np.ndarray, out_next: np.ndarray
    ) -> None:
        """F(k_i, label) into out_own and F(k_{i+1}, label) into out_next; their XOR is this
        party's alpha_i. Kept as two arrays so the AND kernel XORs them on the fly."""
        nonce = label_nonce(batch_id, round_, PURPOSE_ZERO)
        self._stream_into(True, nonce, out_own)
        self._stream_into(False, nonce, out_next)

    def zero_share(self, batch_id: int, round_: int, shape: tuple[int, ...]) -> np.ndarray:
        """alpha_i for one label as a uint64 array of ``shape``."""
        own = np.empty(shape, dtype=np.uint64)
        nxt = np.empty(shape, dtype=np.uint64)
        self.zero_share_streams(batch_id, round_, own, nxt)
        own ^= nxt
        return own

    def random_shares(self, batch_id: int, round_: int, n_bits: int, words: int) -> np.ndarray:
        """This party's replicated shares (x_i, x_{i+1}) of a fresh random value, shape
        (n_bits, 2, words). The three parties' calls with the same label share one value."""
        nonce = label_nonce(batch_id, round_, PURPOSE_RANDOM)
        out = np.empty((2, n_bits, words), dtype=np.uint64)
        self._stream_into(True, nonce, out[0])
        self._stream_into(False, nonce, out[1])
        return np.ascontiguousarray(out.transpose(1, 0, 2))


def deal_keys(
    rng: Callable[[int], bytes] = os.urandom, key_bytes: int = KEY_BYTES
) -> list[tuple[bytes, bytes]]:
    """Three fresh PRF keys dealt as (k_i, k_{i+1}) per party i (setup, tests)."""
    keys = [rng(key_bytes) for _ in range(3)]
    return [(keys[i], keys[(i + 1) % 3]) for i in range(3)]


def party_randomness(rng: Callable[[int], bytes] = os.urandom) -> list[PartyRandomness]:
    """Three PartyRandomness objects with freshly dealt keys (one process: tests, benches)."""
    return [PartyRandomness(own, nxt) for own, nxt in deal_keys(rng)]
