"""``kvno`` with MIT's command line: get service tickets with the cached TGT, print their kvno.

    kvno [-q] [-c ccache] [-e etype] service...

For each service a ticket already in the cache is used; otherwise one is requested from the
KDC with the cache's TGT (TGS exchange) and stored in the cache, as MIT's kvno does. Prints
``service@REALM: kvno = N`` per service; a failure prints MIT's message and the exit status
is 1 if any service failed.
"""

from __future__ import annotations

import getopt
import sys

from clients.ccache import CcacheError, default_ccache_name, read_ccache, write_ccache
from clients.client import ClientError, KdcClient
from clients.cliutil import guarded, report
from clients.krb5conf import ConfigError, load_config
from clients.transport import KdcUnreachable
from kdc.crypto import UnsupportedEnctype, parse_enctype
from kdc.messages import DecodeError, decode
from kdc.messages.model import Ticket
from kdc.principal import parse_principal, unparse_principal

PROG = "kvno"
USAGE = "usage: kvno [-c ccache] [-e etype] [-q] service1 service2 ..."


def _main(argv: list[str]) -> int:
    try:
        opts, services = getopt.getopt(argv, "c:e:q")
    except getopt.GetoptError as exc:
        print(f"{PROG}: {exc.msg}\n{USAGE}", file=sys.stderr)
        return 1
    if not services:
        print(USAGE, file=sys.stderr)
        return 1
    ccache_name = etype = None
    quiet = False
    for opt, value in opts:
        if opt == "-c":
            ccache_name = value
        elif opt == "-e":
            try:
                etype = parse_enctype(value)
            except (UnsupportedEnctype, ValueError):
                return report(PROG, f"Invalid argument while converting etype {value}")
        elif opt == "-q":
            quiet = True
    try:
        config = load_config()
        default_realm = config.require_default_realm()
    except ConfigError as exc:
        return report(PROG, f"{exc} while initializing krb5 library")
    cache = ccache_name or default_ccache_name(config_default=config.default_ccache_name)
    try:
        cc = read_ccache(cache)
    except CcacheError as exc:
        return report(PROG, f"{exc} while getting client principal name")
    _, client_realm = parse_principal(cc.default_principal, default_realm)
    client_realm = client_realm or default_realm
    tgt = cc.find(f"krbtgt/{client_realm}@{client_realm}")
    status = 0
    for service in services:
        name, realm = parse_principal(service, client_realm)
        server = unparse_principal(name, realm or client_realm)
        try:
            cred = cc.find(server)
            if cred is not None and etype is not None and cred.key.etype != etype:
                cred = None
            if cred is None:
                if tgt is None:
                    raise ClientError(
                        f"Matching credential not found (filename: {cache.removeprefix('FILE:')})"
                    )
                client = KdcClient.from_config(
                    config, client_realm,
                    **({"etypes": (etype,)} if etype is not None else {}),
                )
                cred = client.get_service_ticket(tgt, server)
                cc = cc.with_credential(cred)
                write_ccache(cache, cc)
            ticket = decode(Ticket, cred.ticket)
        except (ClientError, KdcUnreachable, ConfigError, CcacheError, OSError) as exc:
            report(PROG, f"{exc} while getting credentials for {server}")
            status = 1
            continue
        except DecodeError:
            report(PROG, f"ticket in cache is malformed while decoding ticket for {server}")
            status = 1
            continue
        if not quiet:
            print(f"{server}: kvno = {ticket.enc_part.kvno or 0}")
    return status


def main(argv: list[str] | None = None) -> int:
    return guarded(PROG, _main, sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
