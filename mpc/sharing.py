"""3-party replicated boolean sharing of bit-sliced values (Araki et al. 2016 §2.1).

A value x (bit-sliced: shape (n_bits, words) uint64, instance t in bit t % 64 of word t // 64)
is split as x = x_0 ^ x_1 ^ x_2 with x_0, x_1 uniform. Party i holds (x_i, x_{i+1 mod 3}) as an
array of shape (n_bits, 2, words). Any one party's two shares are uniform and independent of x;
any two parties together hold all three shares.

Byte strings map to bits in our MSB-first order (CONTRACTS §6): wire 8*j + k carries bit 7 - k
of byte j. ``pack_bytes`` / ``unpack_bytes`` convert n byte strings (one per instance) to and
from the bit-sliced layout. No network code here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from mpc.prf import prf_into

Rng = np.random.Generator | Callable[[int], bytes] | None


class InconsistentShares(ValueError):
    """The two copies of a share held by two parties differ (a party cheated or data was
    corrupted). The message names the share index, never share contents."""


def _random_words(rng: Rng, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    if rng is None:
        # AES-256-CTR under a fresh os.urandom key: a CSPRNG about 20x faster than urandom.
        out = np.empty(shape, dtype=np.uint64)
        prf_into(os.urandom(32), bytes(16), out)
        return out
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, 1 << 64, size=shape, dtype=np.uint64, endpoint=False)
    data = rng(8 * count)
    if len(data) != 8 * count:
        raise ValueError("rng returned the wrong number of bytes")
    return np.frombuffer(data, dtype="<u8").astype(np.uint64).reshape(shape)


def _check_bits(bits: np.ndarray) -> np.ndarray:
    a = np.asarray(bits)
    if a.ndim != 2 or a.dtype != np.uint64:
        raise TypeError("bits must be a uint64 array of shape (n_bits, words)")
    return a


def share_bits(bits: np.ndarray, rng: Rng = None) -> list[np.ndarray]:
    """Split bit-sliced ``bits`` into three replicated sharings, one per party.

    ``rng``: None (the default; use it for real secrets) draws from AES-256-CTR under a fresh
    os.urandom key; a callable like os.urandom is used as is; a numpy Generator is for tests. Returns [party0, party1, party2], each (n_bits, 2, words) uint64.
    """
    x = _check_bits(bits)
    x0 = _random_words(rng, x.shape)
    x1 = _random_words(rng, x.shape)
    x2 = x ^ x0 ^ x1
    shares = (x0, x1, x2)
    return [
        np.ascontiguousarray(np.stack((shares[i], shares[(i + 1) % 3]), axis=1)) for i in range(3)
    ]


def share_public(bits: np.ndarray, party: int) -> np.ndarray:
    """Party ``party``'s shares of a public value: x_0 = bits, x_1 = x_2 = 0 (the same
    convention the evaluator uses for NOT and constants)."""
    x = _check_bits(bits)
    if party not in (0, 1, 2):
        raise ValueError("party must be 0, 1 or 2")
    out = np.zeros((x.shape[0], 2, x.shape[1]), dtype=np.uint64)
    if party == 0:
        out[:, 0] = x
    elif party == 2:
        out[:, 1] = x
    return out


def reveal(shares_from_parties: Sequence[np.ndarray]) -> np.ndarray:
    """Reconstruct x from all three parties' (x_i, x_{i+1}) arrays.

    Every share x_j is held twice: as slot 0 of party j and slot 1 of party j-1. Both copies
    are compared; on any mismatch :class:`InconsistentShares` is raised and nothing is returned.
    """
    if len(shares_from_parties) != 3:
        raise ValueError("reveal needs the shares of all three parties")
    parts = [np.asarray(s) for s in shares_from_parties]
    shape = parts[0].shape
    if len(shape) != 3 or shape[1] != 2 or any(p.shape != shape for p in parts):
        raise ValueError("each party's shares must have the same shape (n_bits, 2, words)")
    for j in range(3):
        # x_j: party j slot 0, party j-1 slot 1. The values are about to be opened, so an
        # ordinary comparison leaks nothing beyond the mismatch itself.
        if not np.array_equal(parts[j][:, 0], parts[(j - 1) % 3][:, 1]):
            raise InconsistentShares(f"the two copies of share x_{j} differ")
    return parts[0][:, 0] ^ parts[1][:, 0] ^ parts[2][:, 0]


def reveal_to(party: int, own: np.ndarray, from_prev: np.ndarray) -> np.ndarray:
    """Party ``party`` opens x from its own (x_i, x_{i+1}) and the missing share x_{i-1}
    received from party i-1 (one message per opening; no consistency check possible)."""
    if party not in (0, 1, 2):
        raise ValueError("party must be 0, 1 or 2")
    own = np.asarray(own)
    return own[:, 0] ^ own[:, 1] ^ np.asarray(from_prev)


# -- packing --------------------------------------------------------------------------------


def words_for(instances: int) -> int:
    """uint64 words needed for ``instances`` bit-sliced instances (at least 1)."""
    return max(1, (instances + 63) // 64)


def pack_bitmatrix(rows: np.ndarray, words: int | None = None) -> np.ndarray:
    """(instances, n_bits) array of 0/1 -> bit-sliced (n_bits, words) uint64."""
    m = np.asarray(rows, dtype=np.uint8)
    if m.ndim != 2:
        raise ValueError("rows must be 2-D (instances, n_bits)")
    n, n_bits = m.shape
    w = words_for(n) if words is None else words
    if 64 * w < n:
        raise ValueError(f"{n} instances do not fit in {w} words")
    packed = np.packbits(m.T & 1, axis=1, bitorder="little")  # (n_bits, ceil(n/8)) bytes
    out = np.zeros((n_bits, 8 * w), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view("<u8").astype(np.uint64, copy=False).reshape(n_bits, w)


def unpack_bitmatrix(bits: np.ndarray, instances: int) -> np.ndarray:
    """Bit-sliced (n_bits, words) uint64 -> (instances, n_bits) uint8 array of 0/1."""
    x = _check_bits(bits)
    if instances > 64 * x.shape[1]:
        raise ValueError("more instances requested than the words hold")
    as_bytes = np.ascontiguousarray(x).astype("<u8", copy=False).view(np.uint8)
    flat = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :instances]
    return np.ascontiguousarray(flat.T)


def pack_bytes(
    values: Sequence[bytes], bit_order: str = "msb", words: int | None = None
) -> np.ndarray:
    """n byte strings of equal length m -> bit-sliced (8m, words) uint64.

    bit_order "msb" (ours, CONTRACTS §6): wire 8*j + k = bit 7 - k of byte j;
    "lsb": wire 8*j + k = bit k of byte j.
    """
    if bit_order not in ("msb", "lsb"):
        raise ValueError("bit_order must be 'msb' or 'lsb'")
    if len(values) == 0:
        raise ValueError("need at least one value")
    m = len(values[0])
    if any(len(v) != m for v in values):
        raise ValueError("all values must have the same length")
    arr = np.frombuffer(b"".join(bytes(v) for v in values), dtype=np.uint8).reshape(len(values), m)
    order = "big" if bit_order == "msb" else "little"
    rows = np.unpackbits(arr, axis=1, bitorder=order)
    return pack_bitmatrix(rows, words)


def unpack_bytes(bits: np.ndarray, instances: int, bit_order: str = "msb") -> list[bytes]:
    """Inverse of :func:`pack_bytes`: the first ``instances`` byte strings."""
    if bit_order not in ("msb", "lsb"):
        raise ValueError("bit_order must be 'msb' or 'lsb'")
    x = _check_bits(bits)
    if x.shape[0] % 8:
        raise ValueError("bit count is not a multiple of 8")
    rows = unpack_bitmatrix(x, instances)
    order = "big" if bit_order == "msb" else "little"
    data = np.packbits(rows, axis=1, bitorder=order)
    return [bytes(r) for r in data]


def pack_ints(values: Sequence[int], n_bits: int, words: int | None = None) -> np.ndarray:
    """n integers -> bit-sliced (n_bits, words), MSB first (wire 0 = bit n_bits - 1)."""
    if n_bits % 8:
        rows = np.array(
            [[(v >> (n_bits - 1 - k)) & 1 for k in range(n_bits)] for v in values], dtype=np.uint8
        ).reshape(len(values), n_bits)
        return pack_bitmatrix(rows, words)
    return pack_bytes([int(v).to_bytes(n_bits // 8, "big") for v in values], "msb", words)


def unpack_ints(bits: np.ndarray, instances: int) -> list[int]:
    """Inverse of :func:`pack_ints`."""
    rows = unpack_bitmatrix(bits, instances)
    weights = [1 << (rows.shape[1] - 1 - k) for k in range(rows.shape[1])]
    return [sum(w for w, b in zip(weights, r, strict=True) if b) for r in rows.tolist()]
