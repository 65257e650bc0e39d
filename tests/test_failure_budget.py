"""Per-address budget of failed long-term-key verifications (kdc/failure_budget.py).

Through the KDC core over the counting reference key service: an address that keeps failing
PA-ENC-TIMESTAMP or sending forged TGTs stops costing key-service work, other addresses and
cached TGTs are served, the budget refills with time, and the realm policy configures it.
"""

from __future__ import annotations

import pytest

from kdc import crypto
from kdc.failure_budget import FailureBudget
from kdc.messages import constants as C
from kdc.messages.model import EncryptedData, Ticket
from kdc.realm import RealmPolicy
from tests.kdc_harness import (
    PEER,
    as_rep_creds,
    as_req,
    capture_key,
    enc_timestamp,
    error_of,
    get_tgt,
    make_harness,
    make_policy,
    tgs_rep_creds,
    tgs_req,
)
from tests.test_core_tgs import _with_ticket

NOW = 1_800_000_000.0
OTHER = ("192.0.2.7", 41000)


def test_budget_spends_refills_and_stays_bounded():
    budget = FailureBudget(burst=3, interval=10.0, max_entries=2)
    for _ in range(3):
        assert not budget.exhausted("a", NOW)
        budget.failed("a", NOW)
    assert budget.exhausted("a", NOW)
    assert budget.exhausted("a", NOW + 9.9)  # 0.99 of a token regained
    assert not budget.exhausted("a", NOW + 10)
    budget.failed("a", NOW + 10)
    assert budget.exhausted("a", NOW + 10)
    assert not budget.exhausted(None, NOW) and not budget.exhausted("b", NOW)
    budget.failed("b", NOW)
    budget.failed("c", NOW)  # a third address evicts the least recently failed one ("a")
    assert not budget.exhausted("a", NOW + 10)
    assert repr(budget) == "FailureBudget(burst=3, 2 addresses)"
    off = FailureBudget(burst=0)
    for _ in range(5):
        off.failed("a", NOW)
    assert not off.exhausted("a", NOW)
    with pytest.raises(ValueError):
        FailureBudget(burst=-1)


async def test_failing_address_gets_no_more_timestamp_decryptions():
    h = make_harness(policy=make_policy(address_failure_burst=3, address_failure_interval=60))
    wrong = crypto.string_to_key(18, "not-bobs-password", "EXAMPLE.COMbob")
    bob = capture_key("bob")

    async def attempt(key, now, peer=PEER):
        h.keys.reset()
        data = as_req("bob", now=now, nonce=int(now) & 0xFFFF,
                      padata=(enc_timestamp(key, now),))
        return await h.send(data, now, peer=peer)

    for i in range(3):
        err = error_of(await attempt(wrong, NOW + i))
        assert err.error_code == C.KDC_ERR_PREAUTH_FAILED
        assert h.keys.calls["decrypt"] == 1
    # Budget spent: even the right password from this address costs nothing and is refused.
    for key in (wrong, bob):
        err = error_of(await attempt(key, NOW + 3))
        assert (err.error_code, err.e_text) == (C.KDC_ERR_POLICY, "TOO_MANY_FAILURES")
        assert h.keys.calls["decrypt"] == h.keys.calls["encrypt"] == 0
    # A request without pre-authentication data costs no key: still answered as before.
    h.keys.reset()
    err = error_of(await h.send(as_req("bob", now=NOW + 3), NOW + 3))
    assert err.error_code == C.KDC_ERR_PREAUTH_REQUIRED
    # Another address logs in.
    creds = as_rep_creds(await attempt(bob, NOW + 3, OTHER), bob)
    assert creds.part.flags & C.PRE_AUTHENT
    # One failure's worth of time later, this address has one attempt again.
    creds = as_rep_creds(await attempt(bob, NOW + 62), bob)
    assert creds.part.flags & C.PRE_AUTHENT and h.keys.calls["decrypt"] == 1


async def test_forged_tgts_spend_the_budget_cached_tgts_do_not_need_it():
    h = make_harness(policy=make_policy(address_failure_burst=2, address_failure_interval=60))
    tgt = await get_tgt(h, now=NOW)
    assert tgs_rep_creds(await h.send(tgs_req(tgt, now=NOW, nonce=1), NOW),
                         tgt.session_key, 8).part.nonce == 1  # now in the TGT cache
    t = tgt.ticket
    for i in range(2):
        cipher = bytearray(t.enc_part.cipher)
        cipher[-1 - i] ^= 1
        bad = _with_ticket(tgt, Ticket(t.realm, t.sname, EncryptedData(18, 1, bytes(cipher))))
        h.keys.reset()
        err = error_of(await h.send(tgs_req(bad, now=NOW, nonce=10 + i), NOW))
        assert err.error_code == C.KRB_AP_ERR_BAD_INTEGRITY and h.keys.calls["decrypt"] == 1
    h.keys.reset()
    err = error_of(await h.send(tgs_req(bad, now=NOW, nonce=20), NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_POLICY, "TOO_MANY_FAILURES")
    assert h.keys.calls["decrypt"] == 0
    # The cached TGT costs no decryption: served. The forged one from elsewhere is decrypted.
    reply = await h.send(tgs_req(tgt, now=NOW, nonce=21), NOW)
    assert tgs_rep_creds(reply, tgt.session_key, 8).part.nonce == 21
    err = error_of(await h.send(tgs_req(bad, now=NOW, nonce=22), NOW, peer=OTHER))
    assert err.error_code == C.KRB_AP_ERR_BAD_INTEGRITY and h.keys.calls["decrypt"] == 1


def test_policy_keys():
    policy = RealmPolicy.from_dict({"address_failure_burst": "5",
                                    "address_failure_interval": "1m"}, realm="R")
    assert (policy.address_failure_burst, policy.address_failure_interval) == (5, 60.0)
    assert RealmPolicy().address_failure_burst == 20
    for bad in ({"address_failure_burst": -1}, {"address_failure_interval": 0}):
        with pytest.raises(ValueError):
            RealmPolicy.from_dict(bad, realm="R")
