"""Read an MIT-style ``krb5.conf`` (the MIT "profile" format) for the client tools.

Only what our clients use is interpreted: ``[libdefaults]`` ``default_realm``,
``udp_preference_limit``, ``ticket_lifetime``, ``renew_lifetime``, ``forwardable``,
``default_ccache_name``, ``default_keytab_name``, ``default_client_keytab_name`` and
``[realms] REALM = { kdc = host:port }``. The whole parsed profile is kept in
``Krb5Config.profile`` for anything else.

The file comes from ``$KRB5_CONFIG`` (a ``:``-separated list, first value wins, as MIT does).
The project never reads ``/etc/krb5.conf`` behind the user's back: when ``KRB5_CONFIG`` is not
set, ``load_config`` raises ``ConfigError`` saying so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

#: MIT's default for udp_preference_limit (krb5.conf(5)): requests larger than this go over TCP.
DEFAULT_UDP_PREFERENCE_LIMIT = 1465
#: MIT's default ticket_lifetime (krb5.conf(5)): one day.
DEFAULT_TICKET_LIFETIME = 24 * 3600
KERBEROS_PORT = 88

_TRUE = {"y", "yes", "true", "t", "1", "on"}
_FALSE = {"n", "no", "false", "nil", "0", "off", "f"}

Profile = dict[str, dict]


class ConfigError(Exception):
    """The configuration is missing or malformed; the message is meant for the user."""


def parse_profile(text: str, *, source: str = "<string>") -> Profile:
    """Parse profile text into ``{section: {name: [value or subsection dict, ...]}}``.

    Every relation keeps a list of values (``kdc`` may repeat); subsections are dicts of the same
    shape. A ``*`` after a name (MIT's "final" marker) is accepted and dropped.
    """
    profile: Profile = {}
    section: dict | None = None
    stack: list[dict] = []
    for lineno, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("include ") or line.startswith("includedir "):
            raise ConfigError(f"{source}:{lineno}: include directives are not supported")
        if line.startswith("["):
            m = re.fullmatch(r"\[([^\]]+)\]\s*\*?", line)
            if not m or stack:
                raise ConfigError(f"{source}:{lineno}: bad section header")
            section = profile.setdefault(m.group(1).strip(), {})
            continue
        if section is None:
            raise ConfigError(f"{source}:{lineno}: relation outside of any [section]")
        current = stack[-1] if stack else section
        if line.startswith("}"):
            if not stack:
                raise ConfigError(f"{source}:{lineno}: unmatched '}}'")
            stack.pop()
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{source}:{lineno}: expected 'name = value'")
        name = name.strip().rstrip("*").strip()
        value = value.strip()
        if value == "{":
            sub: dict = {}
            current.setdefault(name, []).append(sub)
            stack.append(sub)
            continue
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        current.setdefault(name, []).append(value)
    if stack:
        raise ConfigError(f"{source}: unterminated '{{' block")
    return profile


def parse_duration(text: str) -> int:
    """MIT duration syntax (krb5.conf(5) "Durations"): ``36000``, ``10h``, ``1d 2h 3m 4s``,
    ``10h 0m 0s``, ``h:m`` or ``h:m:s``. Returns seconds."""
    value = text.strip()
    if re.fullmatch(r"\d+", value):
        return int(value)
    m = re.fullmatch(r"(\d+):(\d{1,2})(?::(\d{1,2}))?", value)
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)\s*([dhms])", value)
    if parts and re.fullmatch(r"(\s*\d+\s*[dhms])+\s*", value):
        return sum(int(n) * units[u] for n, u in parts)
    raise ConfigError(f"bad duration '{text}'")


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"bad boolean '{text}'")


def parse_kdc_address(text: str) -> tuple[str, int, str | None]:
    """``host``, ``host:port``, ``[v6]:port``, optionally prefixed ``udp/`` or ``tcp/``.

    Returns (host, port, forced transport or None).
    """
    value = text.strip()
    forced = None
    for prefix in ("udp/", "tcp/"):
        if value.lower().startswith(prefix):
            forced = prefix[:3]
            value = value[4:]
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", value)
    if m:
        host, port = m.group(1), m.group(2)
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, None
    if not host:
        raise ConfigError(f"bad kdc address '{text}'")
    try:
        port_number = int(port) if port else KERBEROS_PORT
    except ValueError:
        raise ConfigError(f"bad kdc port in '{text}'") from None
    if not 0 < port_number < 65536:
        raise ConfigError(f"bad kdc port in '{text}'")
    return host, port_number, forced


@dataclass(frozen=True)
class Krb5Config:
    """The client-relevant part of a krb5.conf."""

    default_realm: str | None = None
    udp_preference_limit: int = DEFAULT_UDP_PREFERENCE_LIMIT
    ticket_lifetime: int = DEFAULT_TICKET_LIFETIME
    renew_lifetime: int = 0
    forwardable: bool = False
    default_ccache_name: str | None = None
    default_keytab_name: str | None = None
    default_client_keytab_name: str | None = None
    realm_kdcs: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    profile: Profile = field(default_factory=dict, repr=False)
    sources: tuple[str, ...] = ()

    def kdcs(self, realm: str) -> list[tuple[str, int]]:
        """The ``kdc =`` entries of ``realm``; ConfigError if there are none (no DNS lookup)."""
        found = self.realm_kdcs.get(realm)
        if not found:
            raise ConfigError(f"Cannot find KDC for realm \"{realm}\"")
        return list(found)

    def require_default_realm(self) -> str:
        if not self.default_realm:
            raise ConfigError("Configuration file does not specify default realm")
        return self.default_realm


def _first(section: dict, name: str) -> str | None:
    values = section.get(name)
    if not values:
        return None
    value = values[0]
    return value if isinstance(value, str) else None


def config_from_profile(profile: Profile, sources: tuple[str, ...] = ()) -> Krb5Config:
    lib = profile.get("libdefaults", {})
    kwargs: dict = {"profile": profile, "sources": sources}
    if (v := _first(lib, "default_realm")) is not None:
        kwargs["default_realm"] = v
    if (v := _first(lib, "udp_preference_limit")) is not None:
        try:
            kwargs["udp_preference_limit"] = int(v)
        except ValueError:
            raise ConfigError(f"bad udp_preference_limit '{v}'") from None
    if (v := _first(lib, "ticket_lifetime")) is not None:
        kwargs["ticket_lifetime"] = parse_duration(v)
    if (v := _first(lib, "renew_lifetime")) is not None:
        kwargs["renew_lifetime"] = parse_duration(v)
    if (v := _first(lib, "forwardable")) is not None:
        kwargs["forwardable"] = parse_bool(v)
    for name in ("default_ccache_name", "default_keytab_name", "default_client_keytab_name"):
        if (v := _first(lib, name)) is not None:
            kwargs[name] = v
    realm_kdcs: dict[str, tuple[tuple[str, int], ...]] = {}
    for realm, blocks in profile.get("realms", {}).items():
        kdcs: list[tuple[str, int]] = []
        for block in blocks:
            if not isinstance(block, dict):
                continue
            for entry in block.get("kdc", []):
                if isinstance(entry, str):
                    host, port, _ = parse_kdc_address(entry)
                    kdcs.append((host, port))
        if realm not in realm_kdcs:  # first definition wins, like MIT profile lookups
            realm_kdcs[realm] = tuple(kdcs)
    kwargs["realm_kdcs"] = realm_kdcs
    return Krb5Config(**kwargs)


def _merge(into: dict, other: dict) -> None:
    for name, values in other.items():
        if isinstance(values, dict):  # a section
            _merge(into.setdefault(name, {}), values)
        else:
            into.setdefault(name, []).extend(values)


def load_config(environ: Mapping[str, str] | None = None) -> Krb5Config:
    """Load the files named by ``$KRB5_CONFIG`` (``:``-separated; missing files are skipped,
    as MIT does, but at least one must exist)."""
    env = os.environ if environ is None else environ
    names = env.get("KRB5_CONFIG")
    if not names:
        raise ConfigError(
            "KRB5_CONFIG is not set; set it to the krb5.conf to use "
            "(this client never reads /etc/krb5.conf implicitly)"
        )
    profile: Profile = {}
    used = []
    for path in names.split(":"):
        if not path:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        _merge(profile, parse_profile(text, source=path))
        used.append(path)
    if not used:
        raise ConfigError(f"no configuration file found in KRB5_CONFIG={names}")
    return config_from_profile(profile, tuple(used))
