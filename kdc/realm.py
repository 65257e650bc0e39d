"""Realm-wide KDC policy (the ``[realms]`` stanza of MIT's kdc.conf) and MIT duration syntax.

``RealmPolicy.from_dict`` reads the MIT profile key names (``max_life``, ``max_renewable_life``,
``supported_enctypes``, ``clockskew``, ``kdc_max_dgram_reply_size``) so one kdc.conf-style
mapping configures both MIT ``krb5kdc`` and this KDC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from kdc import failure_budget

# MIT kdc.conf defaults are max_life 24h and max_renewable_life 0; the realm in the captures
# (and `mpckdc up`) uses kdc.conf's "max_life = 10h 0m 0s" / "max_renewable_life = 7d 0h 0m 0s".
DEFAULT_MAX_LIFE = 10 * 3600
DEFAULT_MAX_RENEWABLE_LIFE = 7 * 86400
DEFAULT_CLOCKSKEW = 300  # MIT libdefaults clockskew, RFC 4120 §1.6 "typically 5 minutes"

# RFC 4120 §7.2.1 leaves the largest UDP reply to the implementation. MIT's krb5kdc default
# (kdc_max_dgram_reply_size = MAX_DGRAM_SIZE = 65536) would send IP-fragmented datagrams; we use
# 1465 bytes, the same threshold MIT clients use for their own UDP requests
# (udp_preference_limit), so a reply above it is KRB_ERR_RESPONSE_TOO_BIG and the client retries
# over TCP. Our AS-REP/TGS-REP (no PAC) are 600-1000 bytes.
DEFAULT_UDP_MAX_REPLY = 1465

# A Kerberos request is a few hundred bytes (the captured TGS-REQ with FAST armor: 1021). Anything
# above 64 KiB is refused before decoding (KRB_ERR_FIELD_TOOLONG, RFC 4120 §7.2.2).
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024

# Retransmit cache (MIT kdc/replay.c keeps entries 2 minutes): bounded by entries and bytes.
DEFAULT_LOOKASIDE_TTL = 120.0
DEFAULT_LOOKASIDE_ENTRIES = 4096
DEFAULT_LOOKASIDE_BYTES = 16 * 1024 * 1024


class DurationError(ValueError):
    """A duration string that MIT's krb5_string_to_deltat would not accept."""


_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# "1d 2h 3m 4s" with every part optional but in this order, blanks allowed between parts.
_UNITS_RE = re.compile(
    r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$"
)
# "[D-]H:MM[:SS]" (MIT deltat.y: days '-' hh:mm[:ss], or hh:mm[:ss]).
_CLOCK_RE = re.compile(r"^\s*(?:(\d+)-)?(\d+):(\d+)(?::(\d+))?\s*$")
_PLAIN_RE = re.compile(r"^\s*(\d+)\s*$")


def parse_duration(text: str | int) -> int:
    """Seconds in an MIT duration: ``"10h"``, ``"7d"``, ``"10h 0m 0s"``, ``"1d 2h"``,
    ``"3600"``, ``"10:00"`` / ``"10:00:00"`` (h:m[:s]), ``"1-02:00:00"`` (d-h:m:s).

    Follows the grammar of MIT ``krb5_string_to_deltat`` (lib/krb5/krb/deltat.y); negative
    durations are refused (a lifetime cannot be negative).
    """
    if isinstance(text, bool):
        raise DurationError("not a duration")
    if isinstance(text, int):
        if text < 0:
            raise DurationError("negative duration")
        return text
    if not isinstance(text, str):
        raise DurationError("not a duration")
    m = _PLAIN_RE.match(text)
    if m:
        return int(m.group(1))
    m = _CLOCK_RE.match(text)
    if m:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
        if minutes > 59 or seconds > 59:
            raise DurationError(f"bad h:m:s duration {text!r}")
        return days * 86400 + hours * 3600 + minutes * 60 + seconds
    m = _UNITS_RE.match(text)
    if m and any(m.groups()):
        return sum(int(g) * _UNIT_SECONDS[u] for g, u in zip(m.groups(), "dhms", strict=True) if g)
    raise DurationError(f"bad duration {text!r}")


def format_duration(seconds: int) -> str:
    """``"10h 0m 0s"``-style text (MIT kadmin's getprinc prints lifetimes this way)."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h {minutes}m {secs}s"
    return f"{days}d {text}" if days else text


def _parse_enctypes(value) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        out: list[int] = []
        for v in value:
            out.extend(_parse_enctypes(v))
        return tuple(out)
    if isinstance(value, int):
        return (value,)
    from kdc.crypto import parse_enctype_list

    return tuple(parse_enctype_list(value))


@dataclass(frozen=True, slots=True)
class RealmPolicy:
    """What one realm allows; every time is in seconds."""

    realm: str = "EXAMPLE.COM"
    max_life: int = DEFAULT_MAX_LIFE
    max_renewable_life: int = DEFAULT_MAX_RENEWABLE_LIFE
    supported_enctypes: tuple[int, ...] = (18, 17)
    clockskew: int = DEFAULT_CLOCKSKEW
    udp_max_reply: int = DEFAULT_UDP_MAX_REPLY
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    lookaside_ttl: float = DEFAULT_LOOKASIDE_TTL
    lookaside_entries: int = DEFAULT_LOOKASIDE_ENTRIES
    lookaside_bytes: int = DEFAULT_LOOKASIDE_BYTES
    # Failed verifications under long-term keys an address may spend (kdc/failure_budget.py)
    address_failure_burst: int = failure_budget.DEFAULT_BURST
    address_failure_interval: float = failure_budget.DEFAULT_INTERVAL
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def tgs_name(self) -> str:
        """The canonical name of this realm's ticket-granting service."""
        return f"krbtgt/{self.realm}@{self.realm}"

    @classmethod
    def from_dict(cls, data: Mapping, *, realm: str | None = None) -> RealmPolicy:
        """Build from kdc.conf-style keys; durations accept MIT syntax (``"10h 0m 0s"``).

        Recognised keys: realm, max_life, max_renewable_life, supported_enctypes, clockskew,
        udp_max_reply or kdc_max_dgram_reply_size, max_request_bytes, lookaside_ttl,
        lookaside_entries, lookaside_bytes, address_failure_burst, address_failure_interval.
        Unknown keys are kept in ``extra``.
        """
        kwargs: dict = {}
        extra: dict = {}
        for key, value in data.items():
            k = key.replace("-", "_")
            if k == "realm":
                kwargs["realm"] = str(value)
            elif k in ("max_life", "max_renewable_life", "clockskew"):
                kwargs[k] = parse_duration(value)
            elif k == "supported_enctypes":
                kwargs[k] = _parse_enctypes(value)
            elif k in ("udp_max_reply", "kdc_max_dgram_reply_size"):
                kwargs["udp_max_reply"] = int(value)
            elif k in ("max_request_bytes", "lookaside_entries", "lookaside_bytes",
                       "address_failure_burst"):
                kwargs[k] = int(value)
            elif k in ("lookaside_ttl", "address_failure_interval"):
                kwargs[k] = float(parse_duration(value) if isinstance(value, str) else value)
            else:
                extra[key] = value
        if realm is not None:
            kwargs["realm"] = realm
        policy = cls(**kwargs, extra=extra)
        policy.validate()
        return policy

    def with_changes(self, **changes) -> RealmPolicy:
        return replace(self, **changes)

    def validate(self) -> None:
        """Raise ValueError for settings the KDC cannot work with."""
        if not self.realm:
            raise ValueError("realm must not be empty")
        if self.max_life <= 0:
            raise ValueError("max_life must be positive")
        if self.max_renewable_life < 0 or self.clockskew < 0:
            raise ValueError("durations must not be negative")
        if not self.supported_enctypes:
            raise ValueError("supported_enctypes must not be empty")
        if self.udp_max_reply <= 0 or self.max_request_bytes <= 0:
            raise ValueError("size limits must be positive")
        if self.address_failure_burst < 0 or self.address_failure_interval <= 0:
            raise ValueError("address_failure_burst must be >= 0 and "
                             "address_failure_interval positive")
