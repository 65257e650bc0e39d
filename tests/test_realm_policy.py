"""Realm policy: MIT duration syntax, kdc.conf-style parsing, ticket lifetime clamping."""

from __future__ import annotations

import pytest

from kdc.keyservice.base import DISALLOW_FORWARDABLE, DISALLOW_RENEWABLE, KeyInfo, PrincipalEntry
from kdc.messages import constants as C
from kdc.policy import (
    KDC_INFINITY,
    forwardable_allowed,
    renewable_allowed,
    renewed_times,
    ticket_times,
)
from kdc.realm import (
    DEFAULT_UDP_MAX_REPLY,
    DurationError,
    RealmPolicy,
    format_duration,
    parse_duration,
)

H = 3600
D = 86400
NOW = 1_795_765_876


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10h", 10 * H),
        ("7d", 7 * D),
        ("10h 0m 0s", 10 * H),
        ("7d 0h 0m 0s", 7 * D),
        ("1d 2h", D + 2 * H),
        ("1d2h3m4s", D + 2 * H + 3 * 60 + 4),
        ("90m", 5400),
        ("45s", 45),
        ("3600", 3600),
        (" 3600 ", 3600),
        ("0", 0),
        ("1:30", H + 30 * 60),
        ("10:00:00", 10 * H),
        ("1:30:15", H + 30 * 60 + 15),
        ("1-02:00:00", D + 2 * H),
        (36000, 36000),
    ],
)
def test_parse_duration_mit_syntax(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "   ", "abc", "1x", "-5", "1h 2d", "1:60", "1:00:75", "h", "10 h x", -1, None, True]
)
def test_parse_duration_rejects(text):
    with pytest.raises(DurationError):
        parse_duration(text)


def test_format_duration_round_trips():
    assert format_duration(10 * H) == "10h 0m 0s"
    assert format_duration(7 * D) == "7d 0h 0m 0s"
    for seconds in (0, 59, 3601, 7 * D + 5, 123456):
        assert parse_duration(format_duration(seconds)) == seconds


def test_from_dict_reads_kdc_conf_keys():
    policy = RealmPolicy.from_dict(
        {
            "max_life": "10h 0m 0s",
            "max_renewable_life": "7d 0h 0m 0s",
            "supported_enctypes": "aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal",
            "clockskew": "5m",
            "kdc_max_dgram_reply_size": 4096,
            "master_key_type": "aes256-cts-hmac-sha1-96",
        },
        realm="EXAMPLE.COM",
    )
    assert policy.realm == "EXAMPLE.COM"
    assert policy.max_life == 10 * H
    assert policy.max_renewable_life == 7 * D
    assert policy.supported_enctypes == (18, 17)
    assert policy.clockskew == 300
    assert policy.udp_max_reply == 4096
    assert policy.extra == {"master_key_type": "aes256-cts-hmac-sha1-96"}
    assert policy.tgs_name == "krbtgt/EXAMPLE.COM@EXAMPLE.COM"


def test_defaults_are_documented_values():
    policy = RealmPolicy()
    assert (policy.max_life, policy.max_renewable_life, policy.clockskew) == (10 * H, 7 * D, 300)
    assert policy.supported_enctypes == (18, 17)
    assert policy.udp_max_reply == DEFAULT_UDP_MAX_REPLY == 1465
    assert policy.max_request_bytes == 64 * 1024


def test_from_dict_enctype_list_and_aliases():
    policy = RealmPolicy.from_dict({"supported_enctypes": ["aes128-cts", 18]}, realm="R")
    assert policy.supported_enctypes == (17, 18)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_life": "forever"},
        {"max_life": "0"},
        {"supported_enctypes": ""},
        {"udp_max_reply": 0},
        {"realm": ""},
    ],
)
def test_from_dict_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        RealmPolicy.from_dict({"realm": "R", **bad})


def _entry(name="alice@EXAMPLE.COM", *, max_life=None, max_renewable_life=None, attrs=()):
    return PrincipalEntry(
        name=name, kvno=1, keys=(KeyInfo(18, 1, b"salt"),), attributes=frozenset(attrs),
        max_life=max_life, max_renewable_life=max_renewable_life,
    )


POLICY = RealmPolicy(realm="EXAMPLE.COM", max_life=10 * H, max_renewable_life=7 * D)
TGS = _entry("krbtgt/EXAMPLE.COM@EXAMPLE.COM")


def test_endtime_clamped_by_realm_max_life():
    t = ticket_times(POLICY, NOW, kdc_options=0, till=NOW + 2 * D, rtime=None,
                     client=_entry(), server=TGS)
    assert (t.starttime, t.endtime, t.renew_till) == (NOW, NOW + 10 * H, None)


def test_short_till_is_kept_and_zero_till_means_maximum():
    t = ticket_times(POLICY, NOW, kdc_options=0, till=NOW + H, rtime=None,
                     client=_entry(), server=TGS)
    assert t.endtime == NOW + H
    t = ticket_times(POLICY, NOW, kdc_options=0, till=0, rtime=None, client=_entry(), server=TGS)
    assert t.endtime == NOW + 10 * H


def test_principal_limits_apply():
    client = _entry(max_life=H, max_renewable_life=2 * D)
    t = ticket_times(POLICY, NOW, kdc_options=C.RENEWABLE, till=NOW + D, rtime=NOW + 30 * D,
                     client=client, server=TGS)
    assert t.endtime == NOW + H
    assert t.renew_till == NOW + 2 * D
    server = _entry("HTTP/x@EXAMPLE.COM", max_life=2 * H)
    t = ticket_times(POLICY, NOW, kdc_options=0, till=NOW + D, rtime=None,
                     client=_entry(), server=server)
    assert t.endtime == NOW + 2 * H


def test_renewable_ok_turns_long_till_into_renew_till():
    # The capture: kinit asks renewable-ok with till = +1 day; realm max_life 10h.
    t = ticket_times(POLICY, NOW, kdc_options=C.RENEWABLE_OK, till=NOW + D, rtime=None,
                     client=_entry(), server=TGS)
    assert (t.endtime, t.renew_till) == (NOW + 10 * H, NOW + D)


def test_renewable_ok_with_grantable_till_is_not_renewable():
    t = ticket_times(POLICY, NOW, kdc_options=C.RENEWABLE_OK, till=NOW + 5 * H, rtime=None,
                     client=_entry(), server=TGS)
    assert (t.endtime, t.renew_till) == (NOW + 5 * H, None)


def test_renewable_ok_capped_below_endtime_is_not_renewable():
    client = _entry(max_renewable_life=H)
    t = ticket_times(POLICY, NOW, kdc_options=C.RENEWABLE_OK, till=NOW + D, rtime=None,
                     client=client, server=TGS)
    assert t.renew_till is None


def test_explicit_renewable_without_rtime_gets_maximum():
    t = ticket_times(POLICY, NOW, kdc_options=C.RENEWABLE, till=NOW + H, rtime=None,
                     client=_entry(), server=TGS)
    assert t.renew_till == NOW + 7 * D
    t = ticket_times(POLICY, NOW, kdc_options=C.RENEWABLE, till=NOW + H, rtime=0,
                     client=_entry(), server=TGS)
    assert t.renew_till == NOW + 7 * D


def test_may_renew_false_gives_plain_ticket():
    t = ticket_times(POLICY, NOW, kdc_options=C.RENEWABLE, till=NOW + H, rtime=NOW + D,
                     client=_entry(), server=TGS, may_renew=False)
    assert t.renew_till is None


def test_tgs_bounds_by_tgt():
    t = ticket_times(POLICY, NOW, kdc_options=C.RENEWABLE, till=NOW + D, rtime=NOW + 5 * D,
                     client=None, server=TGS, tgt_endtime=NOW + 2 * H,
                     tgt_renew_till=NOW + D)
    assert (t.endtime, t.renew_till) == (NOW + 2 * H, NOW + D)


def test_renewed_times_keep_lifetime_bounded_by_renew_till():
    t = renewed_times(NOW + 9 * H, starttime=NOW, endtime=NOW + 10 * H, renew_till=NOW + D)
    assert (t.starttime, t.endtime, t.renew_till) == (NOW + 9 * H, NOW + 19 * H, NOW + D)
    t = renewed_times(NOW + 20 * H, starttime=NOW, endtime=NOW + 10 * H, renew_till=NOW + D)
    assert t.endtime == NOW + D


def test_attribute_checks():
    assert forwardable_allowed(_entry(), TGS)
    assert not forwardable_allowed(_entry(attrs=[DISALLOW_FORWARDABLE]), TGS)
    assert renewable_allowed(_entry(), None)
    assert not renewable_allowed(TGS, _entry(attrs=[DISALLOW_RENEWABLE]))
    assert KDC_INFINITY == 2**31 - 1
