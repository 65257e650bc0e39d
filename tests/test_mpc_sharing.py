"""Replicated sharing, reveal's two-copy check, packing, the PRF streams, and share privacy."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpc.prf import (
    PURPOSE_RANDOM,
    PURPOSE_ZERO,
    BatchIdReused,
    PartyRandomness,
    deal_keys,
    label_nonce,
    party_randomness,
)
from mpc.sharing import (
    InconsistentShares,
    pack_bitmatrix,
    pack_bytes,
    pack_ints,
    reveal,
    reveal_to,
    share_bits,
    share_public,
    unpack_bitmatrix,
    unpack_bytes,
    unpack_ints,
)


def random_words(rng, shape):
    return rng.integers(0, 1 << 64, size=shape, dtype=np.uint64, endpoint=False)


# -- share / reveal ------------------------------------------------------------------------------


@pytest.mark.parametrize("rng", [None, os.urandom, np.random.default_rng(5)])
def test_share_reveal_roundtrip(rng):
    x = random_words(np.random.default_rng(1), (37, 3))
    shares = share_bits(x, rng)
    assert [s.shape for s in shares] == [(37, 2, 3)] * 3
    for i in range(3):  # replication: party i's second share is party i+1's first
        assert np.array_equal(shares[i][:, 1], shares[(i + 1) % 3][:, 0])
    assert np.array_equal(reveal(shares), x)
    for i in range(3):
        assert np.array_equal(reveal_to(i, shares[i], shares[(i - 1) % 3][:, 0]), x)


def test_share_public_reveals_the_value():
    x = random_words(np.random.default_rng(2), (9, 2))
    assert np.array_equal(reveal([share_public(x, i) for i in range(3)]), x)
    with pytest.raises(ValueError):
        share_public(x, 3)


@pytest.mark.parametrize("party", [0, 1, 2])
@pytest.mark.parametrize("slot", [0, 1])
def test_reveal_detects_a_tampered_share(party, slot):
    x = random_words(np.random.default_rng(3), (16, 2))
    shares = share_bits(x)
    shares[party][5, slot, 1] ^= np.uint64(1 << 17)  # flip one bit of one copy
    with pytest.raises(InconsistentShares) as info:
        reveal(shares)
    share_index = (party + slot) % 3
    assert f"x_{share_index}" in str(info.value)


def test_reveal_rejects_wrong_shapes():
    x = random_words(np.random.default_rng(4), (4, 1))
    shares = share_bits(x)
    with pytest.raises(ValueError):
        reveal(shares[:2])
    with pytest.raises(ValueError):
        reveal([shares[0], shares[1], shares[2][:3]])
    with pytest.raises(TypeError):
        share_bits(np.zeros((4, 1), dtype=np.int64))


# -- packing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200])
def test_pack_unpack_bytes_roundtrip(n):
    rng = np.random.default_rng(n)
    values = [rng.bytes(7) for _ in range(n)]
    for order in ("msb", "lsb"):
        bits = pack_bytes(values, order)
        assert bits.shape == (56, (n + 63) // 64) and bits.dtype == np.uint64
        assert unpack_bytes(bits, n, order) == values


def test_pack_bit_order():
    """Wire 8j + k = bit 7 - k of byte j; instance t = bit t % 64 of word t // 64."""
    bits = pack_bytes([b"\x00\x00"] * 70 + [b"\x80\x01"], words=3)
    assert bits.shape == (16, 3)
    expected = np.zeros((16, 3), dtype=np.uint64)
    expected[0, 1] = expected[15, 1] = np.uint64(1 << (70 - 64))
    assert np.array_equal(bits, expected)
    lsb = pack_bytes([b"\x80\x01"], "lsb")
    assert lsb[7, 0] == 1 and lsb[8, 0] == 1 and int(lsb.sum()) == 2
    assert unpack_ints(pack_ints([5, 0xABCDEF, 0], 24), 3) == [5, 0xABCDEF, 0]
    assert unpack_ints(pack_ints([5, 17], 5), 2) == [5, 17]
    assert pack_ints([1], 5)[4, 0] == 1


def test_pack_bitmatrix_roundtrip_and_limits():
    rng = np.random.default_rng(9)
    m = rng.integers(0, 2, size=(130, 11), dtype=np.uint8)
    assert np.array_equal(unpack_bitmatrix(pack_bitmatrix(m), 130), m)
    with pytest.raises(ValueError):
        pack_bitmatrix(m, words=2)
    with pytest.raises(ValueError):
        pack_bytes([b"ab", b"c"])


# -- PRF -----------------------------------------------------------------------------------------


def test_zero_shares_sum_to_zero_and_depend_on_the_label():
    rands = party_randomness()
    alphas = [r.zero_share(7, 3, (5, 4)) for r in rands]
    assert np.array_equal(alphas[0] ^ alphas[1] ^ alphas[2], np.zeros((5, 4), dtype=np.uint64))
    assert not np.array_equal(alphas[0], alphas[1])
    assert not np.array_equal(alphas[0], rands[0].zero_share(7, 4, (5, 4)))
    assert not np.array_equal(alphas[0], rands[0].zero_share(8, 3, (5, 4)))
    assert np.array_equal(alphas[0], rands[0].zero_share(7, 3, (5, 4)))  # deterministic


@pytest.mark.parametrize("words", [1, 3, 64, 2047, 2048, 2049, 5000])
def test_prf_streams_are_aes_ctr_of_the_label(words):
    """Short (ECB-built) and long (CTR) keystream paths both equal AES-CTR from the label."""
    own, nxt = deal_keys()[1]
    r = PartyRandomness(own, nxt)
    a = np.empty((1, words), dtype=np.uint64)
    b = np.empty((1, words), dtype=np.uint64)
    r.zero_share_streams(3, 9, a, b)
    nonce = label_nonce(3, 9, PURPOSE_ZERO)
    for key, got in ((own, a), (nxt, b)):
        ctr = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
        assert got.tobytes() == ctr.update(bytes(8 * words))
    with pytest.raises(ValueError):
        r.zero_share_streams(3, 9, np.empty((4, 4), dtype=np.uint64)[:, ::2], b)


@pytest.mark.parametrize("first_round", [0, 9, (1 << 24) - 6])
def test_prf_window_is_the_per_label_ctr_streams(first_round):
    """A window of several labels drawn at once (ECB over built counter blocks) holds each
    label's AES-CTR stream at its block offset: the same alpha as one call per layer."""
    own, nxt = deal_keys()[2]
    r = PartyRandomness(own, nxt)
    counts = np.array([3, 1, 0, 70, 2, 5])
    total = int(counts.sum())
    a = np.empty(2 * total + 2, dtype=np.uint64)
    b = np.empty(2 * total + 2, dtype=np.uint64)
    batch_id = (1 << 64) - 3
    r.zero_share_window(batch_id, first_round, counts, a, b)
    offset = 0
    for k, c in enumerate(counts):
        nonce = label_nonce(batch_id, first_round + k, PURPOSE_ZERO)
        for key, got in ((own, a), (nxt, b)):
            want = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor().update(bytes(16 * c))
            assert got.view(np.uint8)[16 * offset:16 * (offset + c)].tobytes() == want
        offset += c
    with pytest.raises(ValueError):  # output without the block of slack update_into needs
        r.zero_share_window(batch_id, 0, counts, a[:2 * total], b)
    with pytest.raises(ValueError):  # labels past the 24-bit round range
        r.zero_share_window(batch_id, (1 << 24) - 2, counts, a, b)


def test_random_shares_are_replicated():
    rands = party_randomness()
    shares = [r.random_shares(2, 0, 6, 3) for r in rands]
    for i in range(3):
        assert np.array_equal(shares[i][:, 1], shares[(i + 1) % 3][:, 0])
    value = reveal(shares)
    assert value.any() and not np.array_equal(value, shares[0][:, 0])


def test_prf_keys_and_labels():
    keys = deal_keys()
    assert keys[0][1] == keys[1][0] and keys[2][1] == keys[0][0]
    r = PartyRandomness(*keys[0])
    assert "redacted" in repr(r) and keys[0][0].hex() not in repr(r)
    with pytest.raises(ValueError):
        PartyRandomness(b"short", keys[0][1])
    nonce = label_nonce(0x0102030405060708, 0x0A0B0C, PURPOSE_RANDOM)
    assert nonce == bytes.fromhex("01020304050607080a0b0c0100000000")
    assert label_nonce(1, 1, PURPOSE_ZERO) != label_nonce(1, 1, PURPOSE_RANDOM)
    with pytest.raises(ValueError):
        label_nonce(0, 1 << 24, PURPOSE_ZERO)
    with pytest.raises(ValueError):
        label_nonce(-1, 0, PURPOSE_ZERO)
    r.claim_batch(5)
    r.claim_batch(6)
    with pytest.raises(BatchIdReused):
        r.claim_batch(5)


# -- privacy -------------------------------------------------------------------------------------

SAMPLES = 20_000
# Cells tested per secret and party: 2 x 64 single-bit frequencies + 64 x 4 joint (x_i, x_{i+1})
# cells; times 3 parties and 2 secrets.
CELLS = 2 * 3 * (2 * 64 + 64 * 4)
FAILURE_PROBABILITY = 1e-9


def hoeffding_radius(n: int, cells: int, failure: float) -> float:
    """t with P(|count - n p| >= t) <= 2 exp(-2 t^2 / n) <= failure / cells (Hoeffding), so
    by the union bound all cells stay within t except with probability <= failure."""
    return math.sqrt(n / 2 * math.log(2 * cells / failure))


def view_statistics(secret: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each party: counts of ones per view bit (shape (2, 64)) and joint cell counts of the
    pair (x_i bit k, x_{i+1} bit k) (shape (4, 64)), over SAMPLES sharings of ``secret``."""
    x = np.full((SAMPLES, 1), secret, dtype=np.uint64)
    shares = share_bits(x)  # the production path: os.urandom
    stats = []
    for view in shares:
        bits = np.unpackbits(view.reshape(SAMPLES, 2).view(np.uint8), axis=1, bitorder="little")
        bits = bits.reshape(SAMPLES, 2, 64).astype(np.int64)
        ones = bits.sum(axis=0)
        cell = 2 * bits[:, 0, :] + bits[:, 1, :]
        joint = np.stack([(cell == c).sum(axis=0) for c in range(4)])
        stats.append((ones, joint))
    return stats


def test_each_partys_view_is_uniform_and_independent_of_the_secret():
    """Each party's two shares are uniform whatever the secret, so its view of a sharing of
    0 and of a sharing of 0xDEADBEEF... are identically distributed.

    Over SAMPLES sharings per secret, every single-bit frequency (expected n/2) and every joint
    cell of (x_i bit k, x_{i+1} bit k) (expected n/4) must lie within the Hoeffding radius t;
    the two secrets' counts then differ by less than 2t. If the sharing is correct, the test
    fails with probability <= 1e-9 (Hoeffding bound plus a union bound over all CELLS). A
    leaking sharing (e.g. x_{i+1} = x_i ^ secret, or a share equal to the secret) moves a
    count by about n/4 = 5,000, far beyond t ~ 540.
    """
    t = hoeffding_radius(SAMPLES, CELLS, FAILURE_PROBABILITY)
    assert t < SAMPLES / 30  # the test has power against gross leaks
    secrets = [0, 0xDEADBEEF0123456F]
    per_secret = [view_statistics(s) for s in secrets]
    for stats in per_secret:
        for ones, joint in stats:
            assert np.abs(ones - SAMPLES / 2).max() < t
            assert np.abs(joint - SAMPLES / 4).max() < t
    for party in range(3):
        (ones_a, joint_a), (ones_b, joint_b) = per_secret[0][party], per_secret[1][party]
        assert np.abs(ones_a - ones_b).max() < 2 * t
        assert np.abs(joint_a - joint_b).max() < 2 * t


def test_privacy_statistic_detects_a_leaky_sharing():
    """The same statistic rejects a broken scheme whose party-1 view is (x_1, x_1 ^ secret)."""
    t = hoeffding_radius(SAMPLES, CELLS, FAILURE_PROBABILITY)
    rng = np.random.default_rng(11)
    x1 = random_words(rng, (SAMPLES,))
    secret = np.uint64(0xFFFFFFFFFFFFFFFF)
    view = np.stack([x1, x1 ^ secret], axis=1)
    bits = np.unpackbits(view.view(np.uint8), axis=1, bitorder="little").reshape(SAMPLES, 2, 64)
    cell = 2 * bits[:, 0, :].astype(np.int64) + bits[:, 1, :]
    joint = np.stack([(cell == c).sum(axis=0) for c in range(4)])
    assert np.abs(joint - SAMPLES / 4).max() > t
