"""``klist`` with MIT's command line and MIT's output layout.

    klist [-e] [-f] [-s] [-C] [[-c] cache]
    klist -k [-t] [-e] [-K] [keytab]

Only FILE ccaches and keytabs are supported. Column widths, the order of flag letters and the
"extra field" lines follow MIT 1.20's klist so the outputs compare equal line for line.
"""

from __future__ import annotations

import getopt
import locale
import os
import sys
import time

from clients.ccache import CcacheError, Credential, ccache_path, default_ccache_name, read_ccache
from clients.cliutil import guarded, report, sftime, timestamp_width
from clients.keytab import KeytabError, keytab_path, read_keytab
from clients.krb5conf import ConfigError, load_config
from kdc.crypto import UnsupportedEnctype, enctype_name
from kdc.messages import DecodeError, decode
from kdc.messages import constants as c
from kdc.messages.model import Ticket
from kdc.principal import parse_principal, unparse_principal

PROG = "klist"
USAGE = "Usage: klist [-e] [-f] [-s] [-C] [[-c] cache]\n       klist -k [-t] [-e] [-K] [keytab]"

# MIT klist's flag letters, in its order (klist.c flags_string).
FLAG_LETTERS = (
    (c.FORWARDABLE, "F"),
    (c.FORWARDED, "f"),
    (c.PROXIABLE, "P"),
    (c.PROXY, "p"),
    (c.MAY_POSTDATE, "D"),
    (c.POSTDATED, "d"),
    (c.INVALID, "i"),
    (c.RENEWABLE, "R"),
    (c.INITIAL, "I"),
    (c.HW_AUTHENT, "H"),
    (c.PRE_AUTHENT, "A"),
    (c.TRANSITED_POLICY_CHECKED, "T"),
    (c.OK_AS_DELEGATE, "O"),
    (c.ANONYMOUS, "a"),
)


def flags_string(flags: int) -> str:
    return "".join(letter for bit, letter in FLAG_LETTERS if flags & bit)


def etype_string(etype: int) -> str:
    try:
        return enctype_name(etype)
    except (UnsupportedEnctype, KeyError):
        return _OTHER_ENCTYPES.get(etype, f"etype {etype}")


# Names MIT prints for enctypes our crypto table does not implement.
_OTHER_ENCTYPES = {
    16: "des3-cbc-sha1",
    19: "aes128-cts-hmac-sha256-128",
    20: "aes256-cts-hmac-sha384-192",
    23: "arcfour-hmac",
    24: "arcfour-hmac-exp",
    25: "camellia128-cts-cmac",
    26: "camellia256-cts-cmac",
}


class _Printer:
    def __init__(self, width: int) -> None:
        self.width = width
        self.lines: list[str] = []

    def time(self, ts: int) -> str:
        return sftime(ts, self.width).ljust(self.width)


def format_ccache(name: str, cc, *, show_flags: bool, show_etype: bool, show_config: bool,
                  now: int | None = None) -> str:
    """The text MIT klist prints for a ccache."""
    p = _Printer(timestamp_width(now))
    w = p.width
    out = [f"Ticket cache: FILE:{ccache_path(name)}", f"Default principal: {cc.default_principal}",
           ""]
    out.append("Valid starting" + " " * (w - 15 + 3) + "Expires" + " " * (w - 8 + 3)
               + "Service principal")
    for cred in cc.credentials:
        if cred.is_config and not show_config:
            continue
        out.append(_format_credential(p, cred, cc.default_principal, show_flags, show_etype))
    return "\n".join(out) + "\n"


def _format_credential(p: _Printer, cred: Credential, default: str, show_flags: bool,
                       show_etype: bool) -> str:
    text = ""
    if cred.is_config:
        name = cred.server_name
        components = name.components if name else ()
        head = "config: " + "".join(
            comp if i == 1 else f"({comp})" for i, comp in enumerate(components) if i >= 1
        ) + " = "
        text += head
        col = len(head)
    else:
        start = cred.starttime or cred.authtime
        text += f"{p.time(start)}  {p.time(cred.endtime)}  {cred.server}\n"
    extra = 0
    if cred.client != default:
        text += f"\tfor client {cred.client}"
        extra += 1
    if cred.is_config:
        text += _config_data(col, cred.ticket)
    if cred.renew_till:
        text += "\t" if not extra else ", "
        text += "renew until " + p.time(cred.renew_till)
        extra += 2
    if show_flags:
        letters = flags_string(cred.flags)
        if letters:
            text += "\t" if not extra else ", "
            text += f"Flags: {letters}"
            extra += 1
    if extra > 2:
        text += "\n"
        extra = 0
    ticket = None
    if not cred.is_config:
        try:
            ticket = decode(Ticket, cred.ticket)
        except DecodeError:
            ticket = None
    if show_etype and ticket is not None:
        text += "\t" if not extra else ", "
        text += f"Etype (skey, tkt): {etype_string(cred.key.etype)}, "
        text += f"{etype_string(ticket.enc_part.etype)} "
        extra += 1
    if extra:
        text += "\n"
    if ticket is not None:
        server_name, server_realm = parse_principal(cred.server, "")
        if (ticket.realm != server_realm
                or tuple(ticket.sname.components) != tuple(server_name.components)):
            text += f"\tTicket server: {unparse_principal(ticket.sname, ticket.realm)}\n"
    return text.rstrip("\n")


def _config_data(col: int, data: bytes) -> str:
    out = ""
    for byte in data:
        while col < 8:
            out += " "
            col += 1
        if 0x20 < byte < 0x7F:
            out += chr(byte)
            col += 1
        else:
            piece = f"\\{byte:03o}"
            out += piece
            col += len(piece)
        if col > 72:
            out += "\n"
            col = 0
    if col > 0:
        out += "\n"
    return out


def format_keytab(name: str, entries, *, show_time: bool, show_etype: bool, show_keys: bool,
                  now: int | None = None) -> str:
    """The text MIT ``klist -k`` prints for a keytab."""
    w = timestamp_width(now)
    out = [f"Keytab name: FILE:{keytab_path(name)}"]
    if show_time:
        out.append("KVNO Timestamp" + " " * (w - 10 + 2) + "Principal")
        out.append("---- " + "-" * w + " " + "-" * (78 - w - 5))
    else:
        out.append("KVNO Principal")
        out.append("---- " + "-" * 74)
    for e in entries:
        line = f"{e.kvno:4d} "
        if show_time:
            line += sftime(e.timestamp, w).ljust(w) + " "
        line += e.principal
        if show_etype:
            line += f" ({etype_string(e.key.etype)}) "
        if show_keys:
            line += f" (0x{e.key.contents.hex()})"
        out.append(line)
    return "\n".join(out) + "\n"


def _has_current_tgt(cc, now: int) -> bool:
    _, realm = parse_principal(cc.default_principal, "")
    found_tgt = current_tgt = current_other = False
    for cred in cc.credentials:
        if cred.is_config:
            continue
        if cred.server == f"krbtgt/{realm}@{realm}":
            found_tgt = True
            current_tgt = current_tgt or cred.endtime > now
        elif cred.endtime > now:
            current_other = True
    return current_tgt if found_tgt else current_other


def _main(argv: list[str]) -> int:
    try:
        opts, rest = getopt.getopt(argv, "efsCckKtaA")
    except getopt.GetoptError as exc:
        print(f"{PROG}: {exc.msg}\n{USAGE}", file=sys.stderr)
        return 1
    flags = {o for o, _ in opts}
    if len(rest) > 1 or ("-k" in flags and "-c" in flags):
        print(USAGE, file=sys.stderr)
        return 1
    try:
        locale.setlocale(locale.LC_TIME, "")  # MIT klist formats dates in the user's locale
    except locale.Error:
        pass
    now = int(time.time())
    if "-k" in flags:
        name = rest[0] if rest else None
        if name is None:
            try:
                config = load_config()
                name = os.environ.get("KRB5_KTNAME") or config.default_keytab_name
            except ConfigError:
                name = os.environ.get("KRB5_KTNAME")
            name = name or "FILE:/etc/krb5.keytab"
        try:
            entries = read_keytab(name)
        except KeytabError as exc:
            return report(PROG, f"{exc} while starting keytab scan")
        sys.stdout.write(format_keytab(name, entries, show_time="-t" in flags,
                                       show_etype="-e" in flags, show_keys="-K" in flags,
                                       now=now))
        return 0
    if rest:
        name = rest[0]
    else:
        try:
            config_default = load_config().default_ccache_name
        except ConfigError:
            config_default = None
        name = default_ccache_name(config_default=config_default)
    try:
        cc = read_ccache(name)
    except CcacheError as exc:
        if "-s" in flags:
            return 1
        return report(PROG, str(exc))
    if "-s" in flags:
        return 0 if _has_current_tgt(cc, now) else 1
    sys.stdout.write(format_ccache(name, cc, show_flags="-f" in flags, show_etype="-e" in flags,
                                   show_config="-C" in flags, now=now))
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded(PROG, _main, sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
