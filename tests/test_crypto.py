"""Known-answer tests for kdc.crypto (enctypes 17/18) against ../shared/vectors and MIT keys."""

from __future__ import annotations

import pytest

from kdc.crypto import (
    ENCTYPES,
    AesCts,
    IntegrityError,
    Key,
    UnsupportedEnctype,
    UsageKeyCache,
    cts_decrypt,
    cts_encrypt,
    cts_next_iv,
    decrypt,
    derive_key,
    encrypt,
    enctype_name,
    make_checksum,
    nfold,
    parse_enctype,
    parse_enctype_list,
    prf,
    profile,
    random_key,
    string_to_key,
    usage_keys,
    verify_checksum,
)
from tests.vectors import load

AES_SHA1 = (17, 18)


def _ids(vectors, fmt):
    return [fmt(i, v) for i, v in enumerate(vectors)]


def _params(vectors, fmt):
    return pytest.mark.parametrize("v", vectors, ids=_ids(vectors, fmt))


NFOLD = load("nfold")
S2K = [v for v in load("string2key") if v["etype"] in AES_SHA1]
CTS = load("aes_cts")
DERIVE = [
    v for v in load("derive_key", relevant_to_aes=True, function="DK") if v["etype"] in AES_SHA1
]
ENCRYPT = [v for v in load("kerberos_encrypt") if v["etype"] in AES_SHA1]
CHECKSUM = [v for v in load("checksum") if v["cksumtype"] in (15, 16)]
PRF = [v for v in load("prf") if v["etype"] in AES_SHA1]


def test_vector_selection_is_not_empty():
    assert (len(NFOLD), len(S2K), len(CTS), len(DERIVE)) == (16, 15, 6, 6)
    assert (len(ENCRYPT), len(CHECKSUM), len(PRF)) == (12, 2, 6)


# --- n-fold (RFC 3961 §5.1) -------------------------------------------------------------


@_params(NFOLD, lambda i, v: f"{i}-{v['input_ascii'] or v['input'].hex()[:16]}-{v['n_bits']}")
def test_nfold(v):
    assert nfold(v["input"], v["n_bits"] // 8) == v["output"]


def test_nfold_rejects_empty():
    with pytest.raises(ValueError):
        nfold(b"", 16)


# --- string-to-key (RFC 3962 §4, appendix B) ----------------------------------------------


@_params(S2K, lambda i, v: f"{i}-e{v['etype']}-iter{v['iterations']}")
def test_string_to_key(v):
    key = string_to_key(v["etype"], v["password"], v["salt"], v["s2kparams"] or None)
    assert key == Key(v["etype"], v["key"])
    assert key.contents == v["key"]
    if v.get("pbkdf2_output"):  # RFC 3962 publishes tkey; key = DK(tkey, "kerberos")
        assert derive_key(v["pbkdf2_output"], b"kerberos") == v["key"]


@pytest.mark.parametrize(
    "etype,expected",
    [
        (18, "6f4656b4249379e3f71f4da93b5cc6c25dff516351d6e1d93b4bf712a705ff3b"),
        (17, "8af91a0c0e809c442cfba9512ca37c6a"),
    ],
)
def test_string_to_key_matches_mit_capture_keys(etype, expected):
    # ../shared/captures/mit-krb5-1.20/README.md: alice@EXAMPLE.COM, default salt, 4096 iterations
    assert string_to_key(etype, "alice-password", "EXAMPLE.COMalice").contents.hex() == expected
    explicit = string_to_key(
        etype, b"alice-password", b"EXAMPLE.COMalice", bytes.fromhex("00001000")
    )
    assert explicit.contents.hex() == expected


def test_string_to_key_bad_s2kparams():
    with pytest.raises(ValueError):
        string_to_key(18, "pw", "salt", b"\x00\x10")
    with pytest.raises(ValueError):
        string_to_key(18, "pw", "salt", b"\x00\x00\x00\x00")  # 2^32 iterations: refused
    with pytest.raises(ValueError):
        string_to_key(18, "pw", "salt", b"\x01\x00\x00\x00")
    with pytest.raises(UnsupportedEnctype):
        string_to_key(23, "pw", "salt")


def test_random_key():
    a, b = random_key(18), random_key(18)
    assert len(a.contents) == 32 and a != b
    assert len(random_key(17).contents) == 16
    assert random_key(17, rng=lambda n: bytes(range(n))).contents == bytes(range(16))


# --- AES-CBC-CTS (RFC 3962 §5, appendix B) ------------------------------------------------


@_params(CTS, lambda i, v: f"{i}-len{v['plaintext_len']}")
def test_cts_vectors(v):
    ct = cts_encrypt(v["key"], v["iv"], v["plaintext"])
    assert ct == v["ciphertext"]
    assert cts_next_iv(ct) == v["next_iv"]
    assert cts_decrypt(v["key"], v["iv"], v["ciphertext"]) == v["plaintext"]


@pytest.mark.parametrize("n", [16, 17, 31, 32, 33, 48, 63, 64, 65, 200, 216])
@pytest.mark.parametrize("keylen", [16, 32])
def test_cts_round_trip_and_single_block_is_cbc(n, keylen):
    key = bytes(range(keylen))
    iv = bytes(range(100, 116))
    data = bytes((7 * i + 3) % 256 for i in range(n))
    ct = cts_encrypt(key, iv, data)
    assert len(ct) == n and ct != data
    assert cts_decrypt(key, iv, ct) == data
    if n == 16:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        assert ct == enc.update(data) + enc.finalize()


def test_cts_rejects_short_input_and_bad_key():
    with pytest.raises(ValueError):
        cts_encrypt(bytes(16), bytes(16), b"short")
    with pytest.raises(ValueError):
        cts_decrypt(bytes(16), bytes(16), b"short")
    with pytest.raises(ValueError):
        AesCts(b"x" * 15)


# --- key derivation (RFC 3961 §5.1, §5.3) -------------------------------------------------


@_params(DERIVE, lambda i, v: f"{i}-e{v['etype']}-u{v['usage']}-{v['kind']}")
def test_derive_key(v):
    assert derive_key(v["base_key"], v["constant"]) == v["output"]
    uk = usage_keys(Key(v["etype"], v["base_key"]), v["usage"])
    assert getattr(uk, v["kind"].lower()) == v["output"]


# --- RFC 3961 §5.3 encryption ------------------------------------------------------------


@_params(ENCRYPT, lambda i, v: f"{i}-e{v['etype']}-u{v['usage']}-len{len(v['plaintext'])}")
def test_encrypt_known_answer(v):
    key = Key(v["etype"], v["key"])
    uk = usage_keys(key, v["usage"])
    assert (uk.ke, uk.ki) == (v["ke"], v["ki"])
    ct = encrypt(key, v["usage"], v["plaintext"], confounder=v["confounder"])
    assert ct == v["ciphertext"]
    assert ct[:-12] == v["aes_output"] and ct[-12:] == v["hmac"]


@_params(ENCRYPT, lambda i, v: f"{i}-e{v['etype']}-u{v['usage']}-len{len(v['plaintext'])}")
def test_decrypt_known_answer_and_tamper(v):
    key = Key(v["etype"], v["key"])
    assert decrypt(key, v["usage"], v["ciphertext"]) == v["plaintext"]
    ct = v["ciphertext"]
    for pos in (0, len(ct) // 2, len(ct) - 13, len(ct) - 1):  # body, middle, last body, tag
        bad = bytearray(ct)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError) as err:
            decrypt(key, v["usage"], bytes(bad))
        assert key.contents.hex() not in str(err.value)
        assert ct.hex()[:8] not in str(err.value)
    with pytest.raises(IntegrityError):  # wrong usage
        decrypt(key, v["usage"] + 1, ct)


def test_decrypt_too_short():
    key = Key(18, bytes(32))
    for n in (0, 12, 27):
        with pytest.raises(IntegrityError):
            decrypt(key, 1, bytes(n))


@pytest.mark.parametrize("etype", AES_SHA1)
@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 200])
def test_encrypt_round_trip_random_confounder(etype, n):
    key = random_key(etype)
    pt = bytes(range(n % 256)) * (n // 256 + 1)
    pt = pt[:n]
    a, b = encrypt(key, 3, pt), encrypt(key, 3, pt)
    assert a != b and len(a) == n + 16 + 12
    assert decrypt(key, 3, a) == pt == decrypt(key, 3, b)


def test_explicit_cache_is_bounded_and_gives_same_result():
    cache = UsageKeyCache(maxsize=2)
    key = Key(18, bytes(range(32)))
    conf = bytes(16)
    for usage in range(5):
        assert encrypt(key, usage, b"x", conf, cache=cache) == encrypt(key, usage, b"x", conf)
    assert len(cache) == 2
    with pytest.raises(ValueError):
        UsageKeyCache(maxsize=0)


def test_bad_confounder_length():
    with pytest.raises(ValueError):
        encrypt(Key(17, bytes(16)), 1, b"", confounder=bytes(8))


# --- checksums (RFC 3962 §7) -------------------------------------------------------------


@_params(CHECKSUM, lambda i, v: f"{i}-{v['cksumtype_name']}-u{v['usage']}")
def test_checksum(v):
    key = Key(v["etype"], v["key"])
    assert make_checksum(key, v["usage"], v["plaintext"]) == (v["cksumtype"], v["checksum"])
    assert verify_checksum(key, v["usage"], v["plaintext"], v["cksumtype"], v["checksum"])
    bad = bytes([v["checksum"][0] ^ 1]) + v["checksum"][1:]
    assert not verify_checksum(key, v["usage"], v["plaintext"], v["cksumtype"], bad)
    assert not verify_checksum(key, v["usage"] + 1, v["plaintext"], v["cksumtype"], v["checksum"])
    other = 15 if v["cksumtype"] == 16 else 16
    assert not verify_checksum(key, v["usage"], v["plaintext"], other, v["checksum"])
    assert not verify_checksum(key, v["usage"], v["plaintext"], 7, v["checksum"])  # unkeyed md5


# --- PRF (RFC 3962 §4) --------------------------------------------------------------------


@_params(PRF, lambda i, v: f"{i}-e{v['etype']}-{v['input'].hex()}")
def test_prf(v):
    assert prf(Key(v["etype"], v["key"]), v["input"]) == v["output"]


# --- profiles and redaction ---------------------------------------------------------------


def test_profile_table():
    assert set(ENCTYPES) == {17, 18}
    p18, p17 = profile(18), profile(17)
    assert (p18.key_bytes, p18.cksumtype, p18.mac_bytes, p18.block_bytes) == (32, 16, 12, 16)
    assert (p17.key_bytes, p17.cksumtype, p17.default_iterations) == (16, 15, 4096)
    assert enctype_name(18) == "aes256-cts-hmac-sha1-96"
    with pytest.raises(UnsupportedEnctype):
        profile(23)
    with pytest.raises(KeyError):
        enctype_name(99)


@pytest.mark.parametrize(
    "text,etype",
    [
        ("aes256-cts-hmac-sha1-96", 18),
        ("AES256-CTS-HMAC-SHA1-96", 18),
        ("aes256-cts", 18),
        ("aes256-sha1", 18),
        ("18", 18),
        ("aes256-cts-hmac-sha1-96:normal", 18),
        ("aes128-cts-hmac-sha1-96", 17),
        ("aes128-cts", 17),
        ("aes128-sha1:normal", 17),
        ("17", 17),
    ],
)
def test_parse_enctype(text, etype):
    assert parse_enctype(text) == etype


@pytest.mark.parametrize("text", ["rc4-hmac", "23", "aes256-cts:v4", "", "aes"])
def test_parse_enctype_rejects(text):
    with pytest.raises(UnsupportedEnctype):
        parse_enctype(text)


def test_parse_enctype_list():
    assert parse_enctype_list("aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal") == [
        18,
        17,
    ]
    assert parse_enctype_list("aes128-cts, aes256-cts,17") == [17, 18]
    assert parse_enctype_list("aes") == [18, 17]
    assert parse_enctype_list("  ") == []
    with pytest.raises(UnsupportedEnctype):
        parse_enctype_list("aes256-cts des3-cbc-sha1")
    assert parse_enctype_list("aes256-cts des3-cbc-sha1 rc4-hmac", ignore_unknown=True) == [18]


def test_key_and_usage_keys_repr_redacted():
    key = string_to_key(18, "alice-password", "EXAMPLE.COMalice")
    assert repr(key) == "Key(etype=18, <redacted>)" == str(key)
    uk = usage_keys(key, 3)
    for text in (repr(key), repr(uk), str(uk), repr([key, uk])):
        for secret in (key.contents, uk.ke, uk.ki, uk.kc):
            assert secret.hex() not in text
            assert repr(secret) not in text
    assert "<redacted>" in repr(uk)
    assert repr(AesCts(key.contents)) == "AesCts(<redacted>)"


def test_key_validation_and_equality():
    with pytest.raises(ValueError) as err:
        Key(18, b"\x11" * 16)
    assert "11" * 4 not in str(err.value)
    assert Key(18, bytearray(32)) == Key(18, bytes(32))
    assert Key(18, bytes(32)) != Key(18, b"\x01" * 32)
    assert hash(Key(17, bytes(16))) == hash(Key(17, bytes(16)))
    assert Key(23, b"\x00" * 16).etype == 23  # other enctypes can be carried (keytabs), not used


def test_reused_cipher_object_matches_one_off_results():
    # AesCts keeps one CBC context alive across calls; interleave every kind of call.
    aes = AesCts(bytes(range(32)))
    for i, n in enumerate([16, 17, 32, 48, 16, 200, 33, 64]):
        iv = bytes(16) if i % 2 else bytes([i]) * 16
        data = bytes((i + j) % 256 for j in range(n))
        assert aes.encrypt(data, iv) == cts_encrypt(bytes(range(32)), iv, data)
        assert aes.decrypt(aes.encrypt(data, iv), iv) == data
        block = bytes([n]) * 16
        assert aes.encrypt_block(block) == cts_encrypt(bytes(range(32)), bytes(16), block)


def test_default_cache_is_per_thread():
    import threading

    from kdc.crypto.simplified import default_cache

    seen = []
    t = threading.Thread(target=lambda: seen.append(default_cache()))
    t.start()
    t.join()
    assert seen and seen[0] is not default_cache()


CF2 = [v for v in load("fx_cf2") if v["etype"] in AES_SHA1]


@_params(CF2, lambda i, v: f"{i}-e{v['etype']}")
def test_cf2(v):
    from kdc.crypto import cf2

    k1 = string_to_key(v["etype"], v["key1_password"], v["key1_salt"])
    k2 = string_to_key(v["etype"], v["key2_password"], v["key2_salt"])
    assert (k1.contents, k2.contents) == (v["key1"], v["key2"])
    assert cf2(k1, v["pepper1"], k2, v["pepper2"]) == Key(v["etype"], v["output"])
