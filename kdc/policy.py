"""Ticket lifetimes and the flags a request may have: realm and principal limits.

Times follow MIT ``kdc_get_ticket_endtime`` / ``kdc_get_ticket_renewtime`` (src/kdc/kdc_util.c),
which implement RFC 4120 §3.1.3 (AS) and §3.3.3 (TGS):

- endtime = min(till, TGT endtime, start + min(client max_life, server max_life, realm max_life));
  a missing or zero ``till`` means "as long as allowed" (MIT's kdc_infinity).
- renewable when RENEWABLE is asked for (rtime, zero = infinity), or when RENEWABLE-OK is asked for
  and ``till`` could not be granted (then rtime = till); renew_till =
  min(rtime, TGT renew_till, start + min(client, server, realm max_renewable_life)), and only a
  renewable-ok alone gives a renewable ticket only when renew_till lands after the endtime.

Principal limits of ``None`` mean "the realm's value". Flags a principal's attributes forbid
(DISALLOW_FORWARDABLE, DISALLOW_RENEWABLE) are left out of the ticket rather than failing the
request: RFC 4120 §2 lets the KDC's policy decline any optional flag.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdc.keyservice.base import (
    DISALLOW_FORWARDABLE,
    DISALLOW_RENEWABLE,
    PrincipalEntry,
)
from kdc.messages import constants as C
from kdc.realm import RealmPolicy

KDC_INFINITY = 2**31 - 1  # RFC 4120 KerberosTime 20380119031407Z, MIT's kdc_infinity


@dataclass(frozen=True, slots=True)
class TicketTimes:
    starttime: int
    endtime: int
    renew_till: int | None  # set exactly when the ticket is renewable


def max_life(policy: RealmPolicy, *entries: PrincipalEntry | None) -> int:
    out = policy.max_life
    for e in entries:
        if e is not None and e.max_life is not None and e.max_life < out:
            out = e.max_life
    return out


def max_renewable_life(policy: RealmPolicy, *entries: PrincipalEntry | None) -> int:
    out = policy.max_renewable_life
    for e in entries:
        if e is not None and e.max_renewable_life is not None and e.max_renewable_life < out:
            out = e.max_renewable_life
    return out


def renewable_allowed(*entries: PrincipalEntry | None) -> bool:
    for e in entries:
        if e is not None and DISALLOW_RENEWABLE in e.attributes:
            return False
    return True


def forwardable_allowed(*entries: PrincipalEntry | None) -> bool:
    for e in entries:
        if e is not None and DISALLOW_FORWARDABLE in e.attributes:
            return False
    return True


def _requested(t: int | None) -> int:
    # RFC 4120 §5.4.1: till is required, but MIT (and kinit -l 0) use 19700101000000Z for "no
    # limit"; both that and a missing value mean the longest time allowed.
    return KDC_INFINITY if not t else t


def ticket_times(
    policy: RealmPolicy,
    now: int,
    *,
    kdc_options: int,
    till: int | None,
    rtime: int | None,
    client: PrincipalEntry | None,
    server: PrincipalEntry,
    tgt_endtime: int | None = None,
    tgt_renew_till: int | None = None,
    may_renew: bool = True,
) -> TicketTimes:
    """Start, end and renew-till of a new ticket starting ``now``.

    ``tgt_*`` bound a TGS-issued ticket by the TGT it was issued from; ``may_renew`` is False
    when the ticket must not be renewable (principal attributes, or a non-renewable TGT).
    """
    start = now
    until = _requested(till)
    if tgt_endtime is not None:
        until = min(until, tgt_endtime)
    life = max(0, until - start)
    endtime = start + min(life, max_life(policy, client, server))

    if not may_renew:
        return TicketTimes(start, endtime, None)
    if kdc_options & C.RENEWABLE:
        want = _requested(rtime)
    elif kdc_options & C.RENEWABLE_OK and till and till > endtime:
        want = till  # RFC 4120 §3.1.3: renewable-ok turns a too-long till into rtime
    else:
        return TicketTimes(start, endtime, None)
    if tgt_renew_till is not None:
        want = min(want, tgt_renew_till)
    renew_till = min(want, start + max_renewable_life(policy, client, server))
    # MIT kdc_get_ticket_renewtime: with only renewable-ok, a renew-till that does not reach
    # past the endtime gives a plain ticket; an explicit RENEWABLE request is honoured anyway.
    if not kdc_options & C.RENEWABLE and renew_till <= endtime:
        return TicketTimes(start, endtime, None)
    return TicketTimes(start, endtime, renew_till)


def renewed_times(now: int, *, starttime: int, endtime: int, renew_till: int) -> TicketTimes:
    """RFC 4120 §3.3.3.1: a renewed ticket keeps its lifetime, bounded by renew_till."""
    life = max(0, endtime - starttime)
    return TicketTimes(now, min(now + life, renew_till), renew_till)
