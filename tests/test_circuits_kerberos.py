"""RFC 3961/3962 composition circuits (mpc.circuits.kerberos) against kdc.crypto and vectors.

The oracle is the plain path: kdc.crypto (usage_keys, derive_key, encrypt, decrypt), the
published vectors, and a small FIPS-197 key expansion and FIPS 180-4 SHA-1 compression
written here. Circuits are evaluated in the clear, bit-sliced (one instance per bit of a
uint64 word), through Circuit.evaluate_plain or the evaluating PlainBuilder.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from kdc.crypto import (
    KI,
    IntegrityError,
    Key,
    UnsupportedEnctype,
    decrypt,
    derive_key,
    encrypt,
    usage_constant,
    usage_keys,
)
from mpc.builder import CircuitBuilder
from mpc.circuits import kerberos as kc
from mpc.circuits.plain_builder import PlainBuilder
from mpc.sharing import pack_bytes, unpack_bitmatrix, unpack_bytes
from tests.vectors import load

KEY_BYTES = {17: 16, 18: 32}

# -- small independent plain references ---------------------------------------------------------


def _gf_mul(a: int, b: int) -> int:
    out = 0
    while b:
        if b & 1:
            out ^= a
        a = ((a << 1) ^ 0x11B) if a & 0x80 else a << 1
        b >>= 1
    return out


def _make_sbox() -> list[int]:
    # FIPS-197 §5.1.1: multiplicative inverse in GF(2^8), then the affine map with 0x63
    inv = [0] * 256
    for x in range(1, 256):
        inv[x] = next(y for y in range(1, 256) if _gf_mul(x, y) == 1)
    box = []
    for x in range(256):
        v = inv[x]
        s = v
        for r in range(1, 5):
            s ^= ((v << r) | (v >> (8 - r))) & 0xFF
        box.append(s ^ 0x63)
    return box


SBOX = _make_sbox()


def plain_expand_key(key: bytes) -> list[bytes]:
    """FIPS-197 §5.2 KeyExpansion: the Nr + 1 round keys of a 16- or 32-byte key."""
    nk = len(key) // 4
    nr = nk + 6
    words = [key[4 * i : 4 * i + 4] for i in range(nk)]
    rcon = 1
    for i in range(nk, 4 * (nr + 1)):
        t = words[i - 1]
        if i % nk == 0:
            t = bytes(SBOX[x] for x in t[1:] + t[:1])
            t = bytes([t[0] ^ rcon]) + t[1:]
            rcon = _gf_mul(rcon, 2)
        elif nk > 6 and i % nk == 4:
            t = bytes(SBOX[x] for x in t)
        words.append(bytes(x ^ y for x, y in zip(words[i - nk], t, strict=True)))
    return [b"".join(words[4 * r : 4 * r + 4]) for r in range(nr + 1)]


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF


def plain_sha1_compress(state: bytes, block: bytes) -> bytes:
    """FIPS 180-4 §6.1.2 one compression (hashlib hides it; checked against hashlib below)."""
    h = [int.from_bytes(state[4 * i : 4 * i + 4], "big") for i in range(5)]
    w = [int.from_bytes(block[4 * i : 4 * i + 4], "big") for i in range(16)]
    for t in range(16, 80):
        w.append(_rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1))
    a, b, c, d, e = h
    for t in range(80):
        if t < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif t < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif t < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        tmp = (_rotl(a, 5) + f + e + k + w[t]) & 0xFFFFFFFF
        a, b, c, d, e = tmp, a, _rotl(b, 30), c, d
    return b"".join(
        ((x + y) & 0xFFFFFFFF).to_bytes(4, "big") for x, y in zip(h, (a, b, c, d, e), strict=True)
    )


SHA1_IV = bytes.fromhex("67452301efcdab8998badcfe10325476c3d2e1f0")


def plain_hmac_states(ki: bytes) -> tuple[bytes, bytes]:
    """RFC 2104: SHA-1 states after (Ki zero-padded to 64 bytes) XOR ipad / opad."""
    k = ki.ljust(64, b"\0")
    return (
        plain_sha1_compress(SHA1_IV, bytes(x ^ 0x36 for x in k)),
        plain_sha1_compress(SHA1_IV, bytes(x ^ 0x5C for x in k)),
    )


def plain_material(key: Key, usage: int) -> tuple[bytes, bytes, bytes]:
    """(Ke round keys concatenated, inner state, outer state) computed in the clear."""
    uk = usage_keys(key, usage)
    inner, outer = plain_hmac_states(uk.ki)
    return b"".join(plain_expand_key(uk.ke)), inner, outer


def test_plain_references_are_right():
    # The test's own oracles, against FIPS-197 appendix A and hashlib.
    rk = plain_expand_key(bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"))
    assert rk[10] == bytes.fromhex("d014f9a8c9ee2589e13f0cc8b6630ca6")
    rk = plain_expand_key(
        bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    )
    assert rk[14] == bytes.fromhex("fe4890d1e6188d0b046df344706c631e")
    msg = b"abc" + b"\x80" + bytes(52) + (24).to_bytes(8, "big")
    assert plain_sha1_compress(SHA1_IV, msg) == hashlib.sha1(b"abc").digest()


# -- evaluation helpers -----------------------------------------------------------------------


def run(circuit, inputs: list[list[bytes]]) -> list[list[bytes]]:
    """Evaluate bit-sliced: inputs[i] = one byte string per instance; outputs likewise."""
    n = len(inputs[0])
    outs = circuit.evaluate_plain([pack_bytes(values) for values in inputs])
    return [unpack_bytes(o, n) if o.shape[0] % 8 == 0 else o for o in outs]


def rand_key(rng: random.Random, etype: int) -> Key:
    return Key(etype, rng.randbytes(KEY_BYTES[etype]))


# -- DK -------------------------------------------------------------------------------------


def _dk_lanes(etype: int, keys: list[bytes], constant: bytes) -> list[bytes]:
    b = PlainBuilder(len(keys))
    out = kc.dk(b, etype, b.input_bytes(keys), constant)
    assert len(out) == 8 * KEY_BYTES[etype]
    return b.read_all(out)


@pytest.mark.parametrize("etype", [17, 18])
def test_dk_derive_key_vectors(etype):
    vectors = load("derive_key", etype=etype, function="DK")
    assert len(vectors) == 3
    for v in vectors:
        assert _dk_lanes(etype, [v["base_key"]], v["constant"]) == [v["output"]]


@pytest.mark.parametrize("etype", [17, 18])
def test_dk_kerberos_constant_string2key_vectors(etype):
    # RFC 3962 §4: key = DK(tkey, "kerberos"); one lane per published tkey (8-byte constant
    # exercises the n-fold path)
    vectors = [v for v in load("string2key", etype=etype) if v.get("pbkdf2_output")]
    assert len(vectors) >= 7
    got = _dk_lanes(etype, [v["pbkdf2_output"] for v in vectors], b"kerberos")
    assert got == [v["key"] for v in vectors]


def test_dk_random_keys_match_derive_key():
    rng = random.Random(3961)
    for etype in (17, 18):
        keys = [rng.randbytes(KEY_BYTES[etype]) for _ in range(8)]
        constant = usage_constant(rng.randrange(1 << 32), KI)
        assert _dk_lanes(etype, keys, constant) == [derive_key(k, constant) for k in keys]


# -- precompute ---------------------------------------------------------------------------------


@pytest.mark.parametrize("etype", [17, 18])
def test_precompute_function_matches_vectors(etype):
    # Lanes: the published keys of kerberos_encrypt.json for this etype (all usages they use).
    vectors = load("kerberos_encrypt", etype=etype)
    usages = sorted({v["usage"] for v in vectors})
    by_key: dict[bytes, dict[int, dict]] = {}
    for v in vectors:
        by_key.setdefault(v["key"], {})[v["usage"]] = v
    keys = list(by_key)
    b = PlainBuilder(len(keys))
    material = kc.precompute(b, etype, b.input_bytes(keys), usages)
    assert list(material) == usages
    for usage, m in material.items():
        assert len(m.ke_round_keys) == (11 if etype == 17 else 15)
        assert len(m.ki_inner_state) == len(m.ki_outer_state) == 160
        for lane, key in enumerate(keys):
            uk = usage_keys(Key(etype, key), usage)
            assert b.read_bytes(m.ke, lane) == uk.ke
            assert b.read_bytes(m.ki, lane) == uk.ki
            vec = by_key[key].get(usage)
            if vec is not None:
                assert uk.ke == vec["ke"] and uk.ki == vec["ki"]
            rks = b"".join(b.read_bytes(rk, lane) for rk in m.ke_round_keys)
            assert rks == b"".join(plain_expand_key(uk.ke))
            inner, outer = plain_hmac_states(uk.ki)
            assert b.read_bytes(m.ki_inner_state, lane) == inner
            assert b.read_bytes(m.ki_outer_state, lane) == outer


@pytest.mark.parametrize("etype", [17, 18])
def test_precompute_circuit_matches_usage_keys(etype):
    rng = random.Random(etype)
    keys = [Key(etype, v["key"]) for v in load("kerberos_encrypt", etype=etype)[:1]]
    keys += [Key(etype, v["base_key"]) for v in load("derive_key", etype=etype)[:1]]
    keys += [rand_key(rng, etype) for _ in range(6)]
    circuit = kc.build_precompute_circuit(etype)
    assert circuit is kc.build_precompute_circuit(etype, [1, 2, 3])  # cached
    assert circuit.input_sizes == [8 * KEY_BYTES[etype]]
    nk = 11 if etype == 17 else 15
    assert circuit.output_sizes == [128 * nk, 160, 160] * 3
    outs = run(circuit, [[k.contents for k in keys]])
    for i, usage in enumerate((1, 2, 3)):
        want = [plain_material(k, usage) for k in keys]
        for j in range(3):
            assert outs[3 * i + j] == [w[j] for w in want]


def test_precompute_rejects_bad_arguments():
    b = CircuitBuilder()
    with pytest.raises(ValueError):
        kc.precompute(b, 18, b.input(128), [1])
    with pytest.raises(ValueError):
        kc.precompute(b, 17, b.input(128), [2, 2])
    with pytest.raises(UnsupportedEnctype):
        kc.build_precompute_circuit(19)


def test_usage_material_repr_has_no_wire_lists():
    b = PlainBuilder(1)
    m = kc.precompute(b, 17, b.input(128), [1])[1]
    assert "[" not in repr(m) and "round_keys=11" in repr(m)


# -- CTS --------------------------------------------------------------------------------------


def test_cts_rfc3962_vectors_and_inverse():
    vectors = load("aes_cts")
    assert len(vectors) == 6
    for v in vectors:
        assert v["iv"] == bytes(16)
        b = PlainBuilder(1)
        rks = [b.input_bytes([rk]) for rk in plain_expand_key(v["key"])]
        enc = kc.cts_encrypt(b, rks, b.input_bytes([v["plaintext"]]))
        assert b.read_bytes(enc) == v["ciphertext"]
        dec = kc.cts_decrypt(b, rks, b.input_bytes([v["ciphertext"]]))
        assert b.read_bytes(dec) == v["plaintext"]


def test_cts_one_block_is_plain_aes():
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    rng = random.Random(16)
    key, block = rng.randbytes(32), rng.randbytes(16)
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    b = PlainBuilder(1)
    rks = [b.input_bytes([rk]) for rk in plain_expand_key(key)]
    c = kc.cts_encrypt(b, rks, b.input_bytes([block]))
    assert b.read_bytes(c) == ecb.update(block)
    assert b.read_bytes(kc.cts_decrypt(b, rks, c)) == block


# -- encryption -------------------------------------------------------------------------------


def _encrypt_circuit(etype: int, keys: list[Key], usage: int, data: list[bytes]) -> list[bytes]:
    circuit = kc.build_encrypt_circuit(etype, len(data[0]))
    mats = [plain_material(k, usage) for k in keys]
    (out,) = run(circuit, [[m[0] for m in mats], [m[1] for m in mats], [m[2] for m in mats], data])
    return out


@pytest.mark.parametrize("etype", [17, 18])
def test_encrypt_circuit_kerberos_encrypt_vectors(etype):
    vectors = load("kerberos_encrypt", etype=etype)
    assert len(vectors) >= 5
    for v in vectors:
        key = Key(etype, v["key"])
        got = _encrypt_circuit(etype, [key], v["usage"], [v["confounder"] + v["plaintext"]])
        assert got == [v["ciphertext"]] == [v["aes_output"] + v["hmac"]]
        assert got[0] == encrypt(key, v["usage"], v["plaintext"], v["confounder"])


@pytest.mark.parametrize(
    "etype,n_bytes", [(17, 16), (18, 17), (17, 32), (18, 33), (17, 64), (18, 119)]
)
def test_encrypt_circuit_random_messages(etype, n_bytes):
    rng = random.Random(n_bytes * 100 + etype)
    usage = rng.choice([1, 2, 3, 7, 11])
    keys = [rand_key(rng, etype) for _ in range(5)]
    data = [rng.randbytes(n_bytes) for _ in keys]
    got = _encrypt_circuit(etype, keys, usage, data)
    for key, d, c in zip(keys, data, got, strict=True):
        assert c == encrypt(key, usage, d[16:], d[:16])
        assert decrypt(key, usage, c) == d[16:]


def test_precompute_then_encrypt_300_bytes():
    # The key service's pipeline: precompute circuit outputs feed the encrypt circuit inputs.
    etype, n_bytes = 17, 300
    rng = random.Random(300)
    keys = [rand_key(rng, etype) for _ in range(3)]
    pre = run(kc.build_precompute_circuit(etype), [[k.contents for k in keys]])
    data = [rng.randbytes(n_bytes) for _ in keys]
    for i, usage in enumerate((1, 2, 3)):
        circuit = kc.build_encrypt_circuit(etype, n_bytes)
        (got,) = run(circuit, [pre[3 * i], pre[3 * i + 1], pre[3 * i + 2], data])
        assert got == [encrypt(k, usage, d[16:], d[:16]) for k, d in zip(keys, data, strict=True)]


def test_encrypt_runs_cbc_chain_and_hmac_in_parallel():
    # The AND-depth is the deeper of the two parts, not their sum (SPEC "The MPC engine").
    etype, n_bytes = 17, 300
    b = PlainBuilder(1)
    material = kc.UsageMaterial([b.input(128) for _ in range(11)], b.input(160), b.input(160))
    data = b.input(8 * n_bytes)
    out = kc.krb_encrypt(b, etype, material, data)
    cts_depth = b.and_depth_of(out[: 8 * n_bytes])
    mac_depth = b.and_depth_of(out[8 * n_bytes :])
    assert cts_depth == 19 * 40  # 19 chained AES-128 blocks
    circuit = kc.build_encrypt_circuit(etype, n_bytes)
    assert circuit.and_depth == max(cts_depth, mac_depth) == mac_depth


def test_encrypt_circuit_sizes_and_bounds():
    c = kc.build_encrypt_circuit(17, 40)
    assert kc.material_sizes(17) == (11 * 128, 160, 160)
    assert kc.material_sizes(18) == (15 * 128, 160, 160)
    assert c.input_sizes == [11 * 128, 160, 160, 320]
    assert c.output_sizes == [8 * 52]
    assert kc.build_encrypt_circuit(17, 40) is c
    for bad in (15, 0, kc.MAX_MESSAGE_BYTES + 1):
        with pytest.raises(ValueError):
            kc.build_encrypt_circuit(17, bad)
    with pytest.raises(ValueError):
        kc.build_decrypt_circuit(17, 27)
    with pytest.raises(UnsupportedEnctype):
        kc.build_encrypt_circuit(16, 40)


# -- decryption -------------------------------------------------------------------------------


def _decrypt_circuit(etype, keys, usage, ciphertexts):
    circuit = kc.build_decrypt_circuit(etype, len(ciphertexts[0]))
    assert circuit.output_sizes == [1, 8 * (len(ciphertexts[0]) - 12)]
    mats = [plain_material(k, usage) for k in keys]
    inputs = [[m[0] for m in mats], [m[1] for m in mats], [m[2] for m in mats], ciphertexts]
    ok_bits, plain = circuit.evaluate_plain([pack_bytes(values) for values in inputs])
    ok = [int(x) for x in unpack_bitmatrix(ok_bits, len(keys))[:, 0]]
    return ok, unpack_bytes(plain, len(keys))


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("etype", [17, 18])
def test_decrypt_circuit_kerberos_encrypt_vectors(etype):
    for v in load("kerberos_encrypt", etype=etype):
        key = Key(etype, v["key"])
        forged = _flip(v["ciphertext"], 8 * len(v["ciphertext"]) - 1)  # last tag bit
        ok, plain = _decrypt_circuit(etype, [key, key], v["usage"], [v["ciphertext"], forged])
        assert ok == [1, 0]
        assert plain == [v["confounder"] + v["plaintext"], bytes(len(plain[1]))]


@pytest.mark.parametrize("etype,n_bytes", [(17, 16), (18, 32), (17, 47), (18, 216), (17, 300)])
def test_decrypt_circuit_accepts_valid_and_zeroes_forgeries(etype, n_bytes):
    rng = random.Random(7 * n_bytes + etype)
    usage = rng.choice([2, 3, 7])
    key = rand_key(rng, etype)
    data = rng.randbytes(n_bytes)
    good = encrypt(key, usage, data[16:], data[:16])
    body_bits = 8 * n_bytes
    last_block = 16 * ((n_bytes - 1) // 16)
    flips = [0, 127, body_bits - 1, 8 * last_block, body_bits, 8 * len(good) - 1]
    if n_bytes > 32:
        flips.append(8 * (last_block - 16) + 5)  # the swapped-in final CBC block
    forged = [_flip(good, bit) for bit in flips]
    forged.append(good[:-12] + bytes(12))  # zero tag
    other = rand_key(rng, etype)  # right format, wrong key
    cts = [good] + forged + [good]
    keys = [key] * (1 + len(forged)) + [other]
    ok, plain = _decrypt_circuit(etype, keys, usage, cts)
    assert ok == [1] + [0] * (len(cts) - 1)
    assert plain[0] == data
    assert all(p == bytes(n_bytes) for p in plain[1:])
    for c, k in zip(cts[1:], keys[1:], strict=True):
        with pytest.raises(IntegrityError):
            decrypt(k, usage, c)


def test_bit_sliced_many_instances():
    # 64 instances in one word: every lane is an independent encryption.
    etype, n_bytes, usage = 17, 33, 2
    rng = random.Random(64)
    keys = [rand_key(rng, etype) for _ in range(64)]
    data = [rng.randbytes(n_bytes) for _ in keys]
    got = _encrypt_circuit(etype, keys, usage, data)
    assert got == [encrypt(k, usage, d[16:], d[:16]) for k, d in zip(keys, data, strict=True)]
    assert len({g[:16] for g in got}) == 64


# -- three parties, shares end to end -----------------------------------------------------------


def _three_party(circuit, shared_inputs, batch_id):
    """Run with per-party input shares (list per input of 3 arrays); return output shares."""
    from mpc.evaluator import PartyEvaluation
    from mpc.local import run_parties
    from mpc.prf import party_randomness

    words = shared_inputs[0][0].shape[2]
    rands = party_randomness()
    parties = [PartyEvaluation(circuit, i, rands[i], batch_id, words) for i in range(3)]
    for index, shares in enumerate(shared_inputs):
        for i in range(3):
            parties[i].set_input(index, shares[i])
    run_parties(parties)
    return [[p.output(k) for p in parties] for k in range(len(circuit.output_wires))]


def test_three_party_precompute_encrypt_decrypt_on_shares():
    # The key service's flow: the base key is shared, the precomputed material stays shared
    # and feeds the per-message circuits directly; only ciphertext / ok / plaintext open.
    from mpc.sharing import reveal, share_bits, share_public

    etype, usage, n_bytes = 18, 2, 40
    rng = random.Random(3)
    keys = [rand_key(rng, etype) for _ in range(3)]
    key_shares = share_bits(pack_bytes([k.contents for k in keys]))
    material = _three_party(kc.build_precompute_circuit(etype, (usage,)), [key_shares], 1)

    data = [rng.randbytes(n_bytes) for _ in keys]
    public = pack_bytes(data)
    enc = kc.build_encrypt_circuit(etype, n_bytes)
    (ct_shares,) = _three_party(enc, [*material, [share_public(public, i) for i in range(3)]], 2)
    ciphertexts = unpack_bytes(reveal(ct_shares), len(keys))
    assert ciphertexts == [
        encrypt(k, usage, d[16:], d[:16]) for k, d in zip(keys, data, strict=True)
    ]

    cts = [ciphertexts[0], _flip(ciphertexts[1], 3), ciphertexts[2]]
    dec = kc.build_decrypt_circuit(etype, n_bytes + 12)
    public = pack_bytes(cts)
    ok_shares, pt_shares = _three_party(
        dec, [*material, [share_public(public, i) for i in range(3)]], 3
    )
    ok = [int(x) for x in unpack_bitmatrix(reveal(ok_shares), len(keys))[:, 0]]
    assert ok == [1, 0, 1]
    assert unpack_bytes(reveal(pt_shares), len(keys)) == [data[0], bytes(n_bytes), data[2]]
