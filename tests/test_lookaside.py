"""Retransmits are answered from the lookaside cache without a second key-service call."""

from __future__ import annotations

import asyncio
import logging

from kdc.keyservice.base import KeyServiceUnavailable
from kdc.lookaside import Lookaside
from kdc.messages import constants as C
from tests.kdc_harness import (
    BOB_PATIMESTAMP,
    CountingKeyService,
    as_rep_creds,
    as_req,
    capture_key,
    error_of,
    get_tgt,
    make_harness,
    make_key_service,
    make_policy,
    tgs_req,
)
from tests.vectors import capture

NOW = 1_800_000_000.0


async def test_retransmitted_as_req_costs_no_second_key_operation(caplog):
    h = make_harness()
    data = as_req(now=NOW)
    first = await h.send(data, NOW)
    calls = dict(h.keys.calls)
    assert calls == {"lookup": 2, "encrypt": 2}
    caplog.set_level(logging.INFO, logger="mpckdc.kdc")
    # Same bytes from another port (a client retrying) and from another peer.
    again = await h.send(data, NOW + 1, peer=("127.0.0.1", 40001))
    other = await h.send(data, NOW + 2, peer=("10.0.0.9", 88))
    assert again == first == other
    assert dict(h.keys.calls) == calls
    assert caplog.messages[-2] == (
        "DISPATCH: repeated (retransmitted?) request from 127.0.0.1, resending previous response"
    )
    assert h.audit[-1]["lookaside"] is True and h.audit[-1]["outcome"] == "lookaside"
    assert h.kdc.lookaside.stats.hits == 2


async def test_retransmitted_preauth_and_tgs_requests():
    h = make_harness()
    data = capture("bob-as-req-pa-enc-timestamp")
    first = await h.send(data, BOB_PATIMESTAMP)
    assert h.keys.key_operations == 3  # timestamp decryption + ticket + reply
    assert await h.send(data, BOB_PATIMESTAMP + 1) == first
    assert h.keys.key_operations == 3
    tgt = await get_tgt(h, now=NOW)
    h.keys.reset()
    tgs = tgs_req(tgt, now=NOW)
    first = await h.send(tgs, NOW)
    assert await h.send(tgs, NOW + 0.5) == first
    assert h.keys.key_operations == 2


async def test_different_bytes_are_not_hits():
    h = make_harness()
    a = await h.send(as_req(now=NOW, nonce=1), NOW)
    b = await h.send(as_req(now=NOW, nonce=2), NOW)
    assert a != b and h.keys.calls["encrypt"] == 4


async def test_entries_expire_after_ttl():
    h = make_harness(policy=make_policy(lookaside_ttl=10.0))
    data = as_req(now=NOW)
    first = await h.send(data, NOW)
    assert await h.send(data, NOW + 9.9) == first
    assert h.keys.calls["encrypt"] == 2
    later = await h.send(data, NOW + 10.5)
    assert later != first  # processed again: a new session key
    assert h.keys.calls["encrypt"] == 4


async def test_concurrent_duplicates_share_one_evaluation():
    class Slow(CountingKeyService):
        async def encrypt(self, ref, usage, plaintext, confounder=None):
            await asyncio.sleep(0.01)
            return await super().encrypt(ref, usage, plaintext, confounder)

    ks = make_key_service(cls=Slow)
    h = make_harness(keys=ks)
    data = as_req(now=NOW)
    replies = await asyncio.gather(*(h.send(data, NOW) for _ in range(5)))
    assert len(set(replies)) == 1
    assert ks.calls["encrypt"] == 2 and ks.calls["lookup"] == 2
    as_rep_creds(replies[0], capture_key("alice"))
    assert h.kdc.lookaside.stats.waits == 4


async def test_bounded_by_entries():
    h = make_harness(policy=make_policy(lookaside_entries=2))
    reqs = [as_req(now=NOW, nonce=n) for n in range(3)]
    for r in reqs:
        await h.send(r, NOW)
    assert len(h.kdc.lookaside) == 2
    assert h.keys.calls["encrypt"] == 6
    await h.send(reqs[2], NOW)  # newest still cached
    assert h.keys.calls["encrypt"] == 6
    await h.send(reqs[0], NOW)  # oldest was evicted
    assert h.keys.calls["encrypt"] == 8


async def test_bounded_by_bytes():
    h = make_harness(policy=make_policy(lookaside_bytes=1500))
    for n in range(5):
        await h.send(as_req(now=NOW, nonce=n), NOW)
    assert h.kdc.lookaside.size_bytes <= 1500
    assert 1 <= len(h.kdc.lookaside) < 5


async def test_errors_are_cached_but_unavailability_is_not():
    class Flaky(CountingKeyService):
        down = True

        async def encrypt(self, ref, usage, plaintext, confounder=None):
            if self.down:
                raise KeyServiceUnavailable("node down")
            return await super().encrypt(ref, usage, plaintext, confounder)

    ks = make_key_service(cls=Flaky)
    h = make_harness(keys=ks)
    unknown = as_req("nobody", now=NOW)
    e1 = await h.send(unknown, NOW)
    assert await h.send(unknown, NOW + 1) == e1
    assert ks.calls["lookup"] == 2
    data = as_req(now=NOW)
    assert error_of(await h.send(data, NOW)).error_code == C.KDC_ERR_SVC_UNAVAILABLE
    ks.down = False
    assert as_rep_creds(await h.send(data, NOW + 1), capture_key("alice")).part.nonce == 12345


async def test_cached_reply_still_obeys_udp_limit():
    h = make_harness(policy=make_policy(udp_max_reply=200))
    data = as_req(now=NOW)
    tcp = await h.send(data, NOW, transport="tcp")
    assert len(tcp) > 200
    udp = await h.send(data, NOW, transport="udp")
    assert error_of(udp).error_code == C.KRB_ERR_RESPONSE_TOO_BIG
    assert h.keys.calls["encrypt"] == 2
    assert await h.send(data, NOW, transport="tcp") == tcp


async def test_lookaside_unit_behaviour():
    cache = Lookaside(ttl=5, max_entries=10, max_bytes=10_000)
    assert cache.lookup(b"req", 0) is None
    fut = cache.begin(b"req", 0)
    pending = cache.lookup(b"req", 1)
    assert pending is fut
    cache.finish(b"req", fut, b"reply", 1)
    assert fut.result() == b"reply"
    assert cache.lookup(b"req", 5.9) == b"reply"
    assert cache.lookup(b"req", 6.1) is None and len(cache) == 0
    # finish(cache=False) answers the waiters but remembers nothing.
    fut = cache.begin(b"x", 0)
    cache.finish(b"x", fut, b"err", 0, cache=False)
    assert fut.result() == b"err" and cache.lookup(b"x", 0) is None
    # Disabled cache.
    off = Lookaside(max_entries=0)
    assert off.begin(b"y", 0) is None
    off.finish(b"y", None, b"r", 0)
    assert off.lookup(b"y", 0) is None
    # An in-progress entry evicted by the bound releases its waiters with None.
    tiny = Lookaside(ttl=5, max_entries=1)
    f1 = tiny.begin(b"a", 0)
    tiny.begin(b"b", 0)
    assert f1.done() and f1.result() is None
    cache.clear()
    assert len(cache) == 0 and cache.size_bytes == 0
