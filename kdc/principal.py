"""Principal names as text, with MIT krb5's rules (``krb5_parse_name``/``krb5_unparse_name``).

``"HTTP/localhost@EXAMPLE.COM"``: unescaped ``/`` separates components, the first unescaped
``@`` starts the realm (where ``/`` and ``@`` must be escaped); a backslash escapes the next character (``\\n``, ``\\t``, ``\\b`` and
``\\0`` stand for newline, tab, backspace and NUL). The unparsed string is the canonical key
of a principal everywhere in the project (KeyService lookups, KeyRef.principal).
"""

from __future__ import annotations

from kdc.messages.constants import NT_PRINCIPAL, NT_SRV_INST
from kdc.messages.model import PrincipalName

TGS_NAME = "krbtgt"  # RFC 4120 §7.3

_UNESCAPE = {"n": "\n", "t": "\t", "b": "\b", "0": "\0"}
_ESCAPE = {"/": "\\/", "@": "\\@", "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\b": "\\b", "\0": "\\0"}
_ESCAPE_TABLE = str.maketrans(_ESCAPE)


class PrincipalParseError(ValueError):
    """The text is not a principal name (MIT: "Malformed representation of principal")."""


def parse_principal(text: str, default_realm: str | None) -> tuple[PrincipalName, str]:
    """Parse ``text`` into (PrincipalName, realm); the realm defaults to ``default_realm``.

    Name type as MIT gives it: NT_SRV_INST for ``krbtgt/REALM``, NT_PRINCIPAL otherwise.
    """
    components: list[str] = []
    current: list[str] = []
    realm: list[str] | None = None
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, None)
            if nxt is None:
                raise PrincipalParseError("principal name ends with a backslash")
            (current if realm is None else realm).append(_UNESCAPE.get(nxt, nxt))
        elif realm is not None:
            if ch == "@" or ch == "/":
                # MIT krb5_parse_name: both must be escaped inside the realm
                raise PrincipalParseError(f"unescaped {ch!r} in the realm of a principal name")
            realm.append(ch)
        elif ch == "/":
            components.append("".join(current))
            current = []
        elif ch == "@":
            components.append("".join(current))
            current = []
            realm = []
        else:
            current.append(ch)
    if realm is None:
        components.append("".join(current))
        if default_realm is None:
            raise PrincipalParseError("principal name has no realm and there is no default")
        realm_text = default_realm
    else:
        realm_text = "".join(realm)
        if not realm_text:
            raise PrincipalParseError("empty realm in principal name")
    name_type = NT_PRINCIPAL
    if len(components) == 2 and components[0] == TGS_NAME:
        name_type = NT_SRV_INST  # as MIT krb5_parse_name does for TGS principals
    return PrincipalName(name_type, tuple(components)), realm_text


def quote_component(text: str) -> str:
    """One component or realm with MIT's backslash quoting."""
    return text.translate(_ESCAPE_TABLE)


# Texts of names already unparsed (public data; every request unparses the same few names).
_UNPARSED: dict[tuple[tuple[str, ...], str], str] = {}
_UNPARSED_MAX = 4096


def unparse_principal(name: PrincipalName, realm: str) -> str:
    """``"comp1/comp2@REALM"`` with MIT quoting; the inverse of :func:`parse_principal`."""
    components = name.components
    if type(components) is tuple and type(realm) is str:
        key = (components, realm)
        try:
            text = _UNPARSED.get(key)
        except TypeError:  # an unhashable component: let the plain path say what is wrong
            return _unparse(components, realm)
        if text is None:
            text = _unparse(components, realm)
            if len(_UNPARSED) >= _UNPARSED_MAX:
                _UNPARSED.clear()
            _UNPARSED[key] = text
        return text
    return _unparse(components, realm)


def _unparse(components, realm: str) -> str:
    return "/".join(quote_component(c) for c in components) + "@" + quote_component(realm)


def tgs_principal(realm: str) -> PrincipalName:
    """The ticket-granting service name ``krbtgt/REALM`` of a realm (RFC 4120 §7.3)."""
    return PrincipalName(NT_SRV_INST, (TGS_NAME, realm))
