"""The reference (clear-key) key service: Protocol behaviour, admin side, persistence."""

from __future__ import annotations

import json
import os
import stat

import pytest

from kdc import crypto
from kdc.crypto import Key
from kdc.keyservice.base import (
    REQUIRES_PREAUTH,
    IntegrityFailure,
    KeyInfo,
    KeyRef,
    KeyService,
    UnknownKey,
)
from kdc.keyservice.reference import (
    PrincipalExists,
    PrincipalNotFound,
    ReferenceKeyService,
    default_salt,
    split_principal,
)
from tests.vectors import load

REALM = "EXAMPLE.COM"
ALICE = "alice@EXAMPLE.COM"
# ../shared/captures/mit-krb5-1.20/README.md
ALICE_KEYS = {
    18: "6f4656b4249379e3f71f4da93b5cc6c25dff516351d6e1d93b4bf712a705ff3b",
    17: "8af91a0c0e809c442cfba9512ca37c6a",
}
HTTP_KEYS = {
    18: "6757b3a582d4591e7f13069378b9a255d88afd1f0363e0bc1126dd936a52cfcf",
    17: "6d92ce460e07d1a1cc832ba6b190ee44",
}


@pytest.fixture
def svc() -> ReferenceKeyService:
    s = ReferenceKeyService(REALM, clock=lambda: 1_800_000_000)
    s.add_principal("alice", password="alice-password")
    s.add_principal("bob", password="bob-password", attributes=[REQUIRES_PREAUTH])
    s.add_principal(
        "HTTP/localhost",
        keys=[Key(e, bytes.fromhex(h)) for e, h in HTTP_KEYS.items()],
    )
    s.add_principal(f"krbtgt/{REALM}", randkey=True, max_life=36000)
    return s


def test_is_a_key_service(svc):
    assert isinstance(svc, KeyService)


async def test_lookup_public_metadata(svc):
    entry = await svc.lookup(ALICE)
    assert entry.name == ALICE and entry.kvno == 1
    assert entry.keys == (
        KeyInfo(18, 1, b"EXAMPLE.COMalice", None),
        KeyInfo(17, 1, b"EXAMPLE.COMalice", None),
    )
    assert not entry.requires_preauth
    assert (await svc.lookup("bob@EXAMPLE.COM")).requires_preauth
    tgt = await svc.lookup("krbtgt/EXAMPLE.COM@EXAMPLE.COM")
    assert tgt.keys[0].salt == b"EXAMPLE.COMkrbtgtEXAMPLE.COM" and tgt.max_life == 36000
    assert tgt.created == 1_800_000_000
    assert await svc.lookup("nobody@EXAMPLE.COM") is None
    assert await svc.lookup("alice") is None  # the Protocol takes canonical names only


def test_password_keys_equal_mit_keys(svc):
    keys = svc.keys_of(ALICE)
    assert [(k.etype, k.contents.hex()) for k in keys] == list(ALICE_KEYS.items())


@pytest.mark.parametrize("etype", [18, 17])
@pytest.mark.parametrize("usage", [1, 3, 7])
async def test_round_trip_equals_plain_crypto(svc, etype, usage):
    ref = KeyRef(ALICE, 1, etype)
    plain_key = crypto.string_to_key(etype, "alice-password", "EXAMPLE.COMalice")
    conf = bytes(range(16))
    pt = b"EncASRepPart" * 17
    ct = await svc.encrypt(ref, usage, pt, confounder=conf)
    assert ct == crypto.encrypt(plain_key, usage, pt, confounder=conf)
    assert await svc.decrypt(ref, usage, ct) == pt
    assert crypto.decrypt(plain_key, usage, ct) == pt
    fresh = await svc.encrypt(ref, usage, pt)
    assert fresh != ct and await svc.decrypt(ref, usage, fresh) == pt


@pytest.mark.parametrize(
    "v",
    [v for v in load("kerberos_encrypt") if v["etype"] in (17, 18)],
    ids=lambda v: f"e{v['etype']}-u{v['usage']}-len{len(v['plaintext'])}",
)
async def test_vectors_through_key_service(v):
    s = ReferenceKeyService("TEST.REALM")
    s.add_principal("vec", keys=[Key(v["etype"], v["key"])])
    ref = KeyRef("vec@TEST.REALM", 1, v["etype"])
    assert await s.encrypt(ref, v["usage"], v["plaintext"], v["confounder"]) == v["ciphertext"]
    assert await s.decrypt(ref, v["usage"], v["ciphertext"]) == v["plaintext"]


async def test_randomize_bumps_kvno_and_old_key_is_gone(svc):
    name = "HTTP/localhost@EXAMPLE.COM"
    old_ct = await svc.encrypt(KeyRef(name, 1, 18), 2, b"ticket")
    entry = svc.randomize_key(name)
    assert entry.kvno == 2 and [k.kvno for k in entry.keys] == [2, 2]
    assert svc.keys_of(name)[0].contents.hex() != HTTP_KEYS[18]
    with pytest.raises(UnknownKey):
        await svc.decrypt(KeyRef(name, 1, 18), 2, old_ct)
    new_ct = await svc.encrypt(KeyRef(name, 2, 18), 2, b"ticket")
    assert await svc.decrypt(KeyRef(name, 2, 18), 2, new_ct) == b"ticket"
    # keepold keeps the previous kvno usable (key rollover)
    svc.randomize_key(name, keepold=True)
    assert await svc.decrypt(KeyRef(name, 2, 18), 2, new_ct) == b"ticket"
    assert (await svc.lookup(name)).kvno == 3


async def test_change_password(svc):
    entry = svc.change_password("alice", "new-password", etypes=[18])
    assert entry.kvno == 2 and [k.etype for k in entry.keys] == [18]
    assert svc.keys_of(ALICE) == [crypto.string_to_key(18, "new-password", "EXAMPLE.COMalice")]
    with pytest.raises(UnknownKey):
        await svc.encrypt(KeyRef(ALICE, 2, 17), 3, b"x")


async def test_unknown_key(svc):
    for ref in (
        KeyRef("nobody@EXAMPLE.COM", 1, 18),
        KeyRef(ALICE, 2, 18),
        KeyRef(ALICE, 1, 23),
    ):
        with pytest.raises(UnknownKey):
            await svc.encrypt(ref, 3, b"x")
        with pytest.raises(UnknownKey):
            await svc.decrypt(ref, 3, bytes(40))


async def test_bad_tag_is_integrity_failure(svc):
    ref = KeyRef(ALICE, 1, 18)
    ct = await svc.encrypt(ref, 3, b"reply")
    for bad in (ct[:-1] + bytes([ct[-1] ^ 0x80]), bytes([ct[0] ^ 1]) + ct[1:], ct[:20]):
        with pytest.raises(IntegrityFailure) as err:
            await svc.decrypt(ref, 3, bad)
        assert ALICE_KEYS[18] not in str(err.value) and bad.hex() not in str(err.value)
    with pytest.raises(IntegrityFailure):
        await svc.decrypt(KeyRef(ALICE, 1, 17), 3, ct)  # other key
    with pytest.raises(IntegrityFailure):
        await svc.decrypt(ref, 4, ct)  # other usage


async def test_checksums_by_reference(svc):
    ref = KeyRef(ALICE, 1, 18)
    cksumtype, value = await svc.make_checksum(ref, 17, b"pac")
    key = svc.keys_of(ALICE)[0]
    assert (cksumtype, value) == crypto.make_checksum(key, 17, b"pac")
    assert await svc.verify_checksum(ref, 17, b"pac", 16, value)
    assert not await svc.verify_checksum(ref, 17, b"pac!", 16, value)


def test_admin_add_get_list_modify_delete(svc):
    with pytest.raises(PrincipalExists):
        svc.add_principal("alice@EXAMPLE.COM", password="x")
    with pytest.raises(ValueError):
        svc.add_principal("carol")  # no key source
    with pytest.raises(ValueError):
        svc.add_principal("carol", password="x", randkey=True)
    assert svc.list() == sorted(
        ["HTTP/localhost@EXAMPLE.COM", ALICE, "bob@EXAMPLE.COM", "krbtgt/EXAMPLE.COM@EXAMPLE.COM"]
    )
    assert svc.list("krbtgt/*") == ["krbtgt/EXAMPLE.COM@EXAMPLE.COM"]
    assert svc.get("alice").name == ALICE and svc.get("carol") is None
    entry = svc.modify("alice", add_attributes=[REQUIRES_PREAUTH], max_renewable_life=7 * 86400)
    assert entry.requires_preauth and entry.max_renewable_life == 7 * 86400
    entry = svc.modify("alice", remove_attributes=[REQUIRES_PREAUTH], max_life=None)
    assert not entry.requires_preauth and entry.max_renewable_life == 7 * 86400
    svc.delete("bob")
    assert svc.get("bob") is None
    with pytest.raises(PrincipalNotFound):
        svc.delete("bob")
    with pytest.raises(PrincipalNotFound):
        svc.keys_of("bob")
    with pytest.raises(PrincipalNotFound):
        svc.randomize_key("bob")


def test_default_salt_and_name_splitting():
    assert default_salt("HTTP/localhost@EXAMPLE.COM") == b"EXAMPLE.COMHTTPlocalhost"
    assert default_salt("alice@EXAMPLE.COM") == b"EXAMPLE.COMalice"
    assert split_principal(r"a\/b/c@R") == (["a/b", "c"], "R")
    assert split_principal("x") == (["x"], None)
    for bad in ("@R", "a//b@R", "a@", "a@R@S", "a\\"):
        with pytest.raises(ValueError):
            split_principal(bad)


async def test_save_load_round_trip(svc, tmp_path):
    svc.randomize_key("HTTP/localhost", keepold=True)
    path = tmp_path / "keys.json"
    svc.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temp file left behind
    loaded = ReferenceKeyService.load(path)
    assert loaded.realm == REALM
    assert loaded.list() == svc.list()
    for name in svc.list():
        assert await loaded.lookup(name) == await svc.lookup(name)
        assert loaded.keys_of(name) == svc.keys_of(name)
    assert loaded.keys_of("HTTP/localhost", kvno=1) == svc.keys_of("HTTP/localhost", kvno=1)
    ref = KeyRef(ALICE, 1, 18)
    ct = await svc.encrypt(ref, 3, b"hello")
    assert await loaded.decrypt(ref, 3, ct) == b"hello"
    # saving over an existing, more permissive file still leaves 0600
    os.chmod(path, 0o644)
    loaded.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_load_rejects_malformed(tmp_path, svc):
    path = tmp_path / "bad.json"
    path.write_text("not json")
    with pytest.raises(ValueError):
        ReferenceKeyService.load(path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError):
        ReferenceKeyService.load(path)
    doc = svc.to_json()
    doc["principals"][0]["keys"][0]["key_hex"] = "abcd"  # wrong key length
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as err:
        ReferenceKeyService.load(path)
    assert "abcd" not in str(err.value)


def test_repr_never_contains_key_material(svc):
    texts = [repr(svc), str(svc)]
    for name in svc.list():
        for key in svc.keys_of(name):
            texts.append(repr(key))
        texts.append(repr(svc.get(name)))
    texts.append(repr(svc._db))
    joined = "\n".join(texts)
    for name in svc.list():
        for key in svc.keys_of(name):
            assert key.contents.hex() not in joined
            assert repr(key.contents) not in joined
    assert "principals=4" in repr(svc)
