"""``kinit`` with MIT's command line: obtain (or renew) a TGT and store it in a FILE ccache.

    kinit [-V] [-l lifetime] [-r renewable_life] [-f|-F] [-k [-t keytab]] [-c ccache] [-R]
          [-S service] [principal]

The password is read from the terminal without echo or, when stdin is not a terminal, as one
line from stdin (as MIT's prompter does). Configuration comes from ``$KRB5_CONFIG`` and the
cache from ``-c`` or ``$KRB5CCNAME``. Failures print MIT's messages and exit with status 1.
"""

from __future__ import annotations

import getopt
import getpass
import os
import pwd
import sys

from clients.ccache import Ccache, CcacheError, ccache_path, default_ccache_name, read_ccache
from clients.ccache import write_ccache as store_ccache
from clients.client import ClientError, KdcClient, KdcError
from clients.cliutil import guarded, report
from clients.keytab import KeytabError, keytab_path, read_keytab
from clients.krb5conf import ConfigError, load_config, parse_duration
from clients.transport import KdcUnreachable
from kdc.messages import constants as c
from kdc.principal import parse_principal, unparse_principal

PROG = "kinit"
USAGE = (
    "Usage: kinit [-V] [-l lifetime] [-r renewable_life] [-f | -F] [-k [-t keytab_file]] "
    "[-c cachename] [-R] [-S service_name] [principal]"
)


def _read_password(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    # Not a terminal: MIT prints the prompt and reads one line.
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    sys.stdout.write("\n")
    if not line:
        raise EOFError
    return line.rstrip("\r\n")


def _error_text(exc: Exception, *, with_password: bool) -> str:
    """MIT kinit's wording: a reply that fails to decrypt is always "Password incorrect", a
    failed pre-authentication only when a password was typed (keytab: "Preauthentication
    failed")."""
    if isinstance(exc, KdcError):
        if exc.code == c.KRB_AP_ERR_BAD_INTEGRITY or (
            with_password and exc.code == c.KDC_ERR_PREAUTH_FAILED
        ):
            return "Password incorrect"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    return guarded(PROG, _main, sys.argv[1:] if argv is None else list(argv))


def _main(args: list[str]) -> int:
    try:
        opts, rest = getopt.getopt(args, "Vl:r:fFkt:c:RS:")
    except getopt.GetoptError as exc:
        print(f"{PROG}: {exc.msg}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 1
    if len(rest) > 1:
        print(USAGE, file=sys.stderr)
        return 1
    verbose = use_keytab = renew = False
    lifetime = renewable = None
    forwardable: bool | None = None
    keytab_name = ccache_name = service = None
    try:
        for opt, value in opts:
            if opt == "-V":
                verbose = True
            elif opt == "-l":
                lifetime = parse_duration(value)
            elif opt == "-r":
                renewable = parse_duration(value)
            elif opt == "-f":
                forwardable = True
            elif opt == "-F":
                forwardable = False
            elif opt == "-k":
                use_keytab = True
            elif opt == "-t":
                keytab_name = value
            elif opt == "-c":
                ccache_name = value
            elif opt == "-R":
                renew = True
            elif opt == "-S":
                service = value
    except ConfigError:
        bad = "lifetime" if opt == "-l" else "renewable lifetime"
        return report(PROG, f"Bad {bad} value {value}")
    if keytab_name and not use_keytab:
        print("keytab specified, forcing -k", file=sys.stderr)  # as MIT kinit does
        use_keytab = True
    try:
        config = load_config()
    except ConfigError as exc:
        return report(PROG, f"{exc} while initializing Kerberos 5 library")
    cache = ccache_name or default_ccache_name(config_default=config.default_ccache_name)
    try:
        ccache_path(cache)
    except CcacheError as exc:
        return report(PROG, f"{exc} while resolving ccache {cache}")
    if forwardable is None:
        forwardable = config.forwardable
    if renewable is None and config.renew_lifetime:
        renewable = config.renew_lifetime
    try:
        default_realm = config.require_default_realm()
    except ConfigError as exc:
        return report(PROG, f"{exc} while getting default realm")

    if rest:
        principal_text = rest[0]
    elif renew or not use_keytab:
        principal_text = _principal_from_cache(cache) or pwd.getpwuid(os.getuid()).pw_name
    else:
        principal_text = f"host/{os.uname().nodename}"
    try:
        name, realm = parse_principal(principal_text, default_realm)
    except ValueError as exc:
        return report(PROG, f"{exc} when parsing name {principal_text}")
    principal = unparse_principal(name, realm or default_realm)
    if verbose:
        where = "specified" if ccache_name else "default"
        print(f"Using {where} cache: {ccache_path(cache)}")
        print(f"Using principal: {principal}")

    try:
        client = KdcClient.from_config(config, realm or default_realm)
    except ConfigError as exc:
        return report(PROG, f"{exc} while getting initial credentials")

    if renew:
        return _renew(client, cache, verbose)

    try:
        if use_keytab:
            kt = keytab_name or os.environ.get("KRB5_KTNAME") or \
                config.default_client_keytab_name or "FILE:/etc/krb5.keytab"
            if verbose:
                print(f"Using keytab: {keytab_path(kt)}")
            cred = client.get_tgt_keytab(principal, read_keytab(kt), lifetime=lifetime,
                                         renewable=renewable, forwardable=forwardable,
                                         service=service)
        else:
            try:
                password = _read_password(f"Password for {principal}: ")
            except (EOFError, KeyboardInterrupt):
                return report(PROG, "Cannot read password while getting initial credentials")
            cred = client.get_tgt_password(principal, password, lifetime=lifetime,
                                           renewable=renewable, forwardable=forwardable,
                                           service=service)
            del password
    except (ClientError, KdcUnreachable, KeytabError, ConfigError) as exc:
        message = _error_text(exc, with_password=not use_keytab)
        return report(PROG, f"{message} while getting initial credentials")
    try:
        store_ccache(cache, Ccache(cred.client, [cred]))
    except (CcacheError, OSError) as exc:
        return report(PROG, f"{exc} while storing credentials")
    if verbose:
        print("Authenticated to Kerberos v5")
    return 0


def _principal_from_cache(cache: str) -> str | None:
    try:
        return read_ccache(cache).default_principal
    except (CcacheError, OSError):
        return None


def _renew(client: KdcClient, cache: str, verbose: bool) -> int:
    try:
        cc = read_ccache(cache)
    except CcacheError as exc:
        return report(PROG, f"{exc} while renewing credentials")
    tgt = cc.find(f"krbtgt/{client.realm}@{client.realm}")
    if tgt is None:
        return report(PROG, "Matching credential not found while renewing credentials")
    try:
        cred = client.renew(tgt)
    except (ClientError, KdcUnreachable) as exc:
        return report(PROG, f"{exc} while renewing credentials")
    try:
        store_ccache(cache, Ccache(cred.client, [cred]))
    except (CcacheError, OSError) as exc:
        return report(PROG, f"{exc} while storing credentials")
    if verbose:
        print("Authenticated to Kerberos v5")
    return 0


if __name__ == "__main__":
    sys.exit(main())
