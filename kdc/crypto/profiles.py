"""The enctype profile table: one frozen row per supported Kerberos enctype.

Shaped like MIT krb5 ``src/lib/crypto/krb/etypes.c``: number, name, aliases, key and block
sizes, checksum type. Adding an enctype is adding a row (plus its primitives). Enctype strings
from ``krb5.conf``/``kdc.conf`` (``supported_enctypes``) and from kadmin ``-e`` options parse
through this same table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class UnsupportedEnctype(KeyError):
    """The enctype (number or name) is not in the profile table."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unsupported enctype"


@dataclass(frozen=True, slots=True)
class EnctypeProfile:
    """Public parameters of one enctype (RFC 3961 §3 profile, RFC 3962 §6 values)."""

    etype: int
    name: str  # MIT's canonical name
    aliases: tuple[str, ...]
    key_bytes: int  # protocol key length (= random-to-key input length for AES)
    cksumtype: int  # the keyed checksum that goes with the enctype (RFC 3962 §7)
    cksumtype_name: str
    block_bytes: int = 16  # AES block = confounder length (RFC 3962 §6)
    mac_bytes: int = 12  # HMAC-SHA1-96 (RFC 3962 §6)
    default_iterations: int = 4096  # RFC 3962 §4 default PBKDF2 count
    family: str = "aes"  # MIT enctype-list family name ("aes" in supported_enctypes)

    @property
    def confounder_bytes(self) -> int:
        return self.block_bytes


# RFC 3962 §7 (enctype and checksum type numbers); aliases as MIT etypes.c spells them.
ENCTYPES: dict[int, EnctypeProfile] = {
    p.etype: p
    for p in (
        EnctypeProfile(
            etype=18,
            name="aes256-cts-hmac-sha1-96",
            aliases=("aes256-cts", "aes256-sha1"),
            key_bytes=32,
            cksumtype=16,
            cksumtype_name="hmac-sha1-96-aes256",
        ),
        EnctypeProfile(
            etype=17,
            name="aes128-cts-hmac-sha1-96",
            aliases=("aes128-cts", "aes128-sha1"),
            key_bytes=16,
            cksumtype=15,
            cksumtype_name="hmac-sha1-96-aes128",
        ),
    )
}

# Checksum type number -> enctype whose key it is computed with.
CKSUMTYPES: dict[int, int] = {p.cksumtype: p.etype for p in ENCTYPES.values()}

_BY_NAME: dict[str, int] = {}
for _p in ENCTYPES.values():
    for _n in (_p.name, *_p.aliases):
        _BY_NAME[_n.lower()] = _p.etype


def profile(etype: int) -> EnctypeProfile:
    """The profile row of ``etype``; raises UnsupportedEnctype if there is none."""
    try:
        return ENCTYPES[etype]
    except (KeyError, TypeError):
        raise UnsupportedEnctype(f"unsupported enctype {etype!r}") from None


def enctype_name(etype: int) -> str:
    """MIT's name of ``etype`` ("aes256-cts-hmac-sha1-96")."""
    return profile(etype).name


def parse_enctype(name: str) -> int:
    """Enctype number from an MIT name, alias or decimal number.

    A kadmin ``-e`` salt suffix ``:normal`` is accepted and ignored (the only salt type we
    implement is the RFC 4120 §4 default salt).
    """
    text = name.strip()
    base, sep, salttype = text.partition(":")
    if sep and salttype.strip().lower() != "normal":
        raise UnsupportedEnctype(f"unsupported salt type in {text!r}")
    base = base.strip().lower()
    if base.isdigit():
        return profile(int(base)).etype
    try:
        return _BY_NAME[base]
    except KeyError:
        raise UnsupportedEnctype(f"unknown enctype {text!r}") from None


def parse_enctype_list(text: str, *, ignore_unknown: bool = False) -> list[int]:
    """Parse an MIT enctype list ("aes256-cts-hmac-sha1-96:normal aes128-cts, 17").

    Entries are separated by spaces or commas; the family name ``aes`` expands to every AES
    row in table order (MIT's enctype-list families); duplicates keep their first position.
    Unknown names raise UnsupportedEnctype unless ``ignore_unknown`` (MIT skips them with a
    warning when reading permitted/supported enctype lists).
    """
    out: list[int] = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        base = item.partition(":")[0].strip().lower()
        try:
            if base in {p.family for p in ENCTYPES.values()}:
                found = [p.etype for p in ENCTYPES.values() if p.family == base]
            else:
                found = [parse_enctype(item)]
        except UnsupportedEnctype:
            if ignore_unknown:
                continue
            raise
        for e in found:
            if e not in out:
                out.append(e)
    return out
