"""``mpckdc admin``: MIT kadmin verbs on a realm whose keys live as shares on three MPC nodes.

    mpckdc admin [-c CLIENT_TOML] [-r REALM] [-d DIR] [-q "VERB ARGS"] VERB ARGS...

    addprinc|ank [-pw PW | -randkey] [-e ENCTYPES] [{+|-}requires_preauth ...]
                 [-maxlife T] [-maxrenewlife T] [-expire DATE] [-pwexpire DATE] PRINCIPAL
    delprinc [-force] PRINCIPAL
    cpw [-pw PW | -randkey] [-e ENCTYPES] PRINCIPAL
    modprinc [{+|-}ATTR ...] [-maxlife T] [-maxrenewlife T] [-expire DATE] PRINCIPAL
    getprinc PRINCIPAL                 (public metadata; never key bytes)
    listprincs [GLOB]
    ktadd|xst [-k KEYTAB] [-e ENCTYPES] [-q] PRINCIPAL...   (new random keys, kvno + 1)
    bulk-addprinc --count N --format 'user{i:04d}' [-pw PW | -randkey] [-k KEYTAB]
                  [+requires_preauth] [-e ENCTYPES] [--start S] [--concurrency C]
                  [--batch B]    (principals per precompute job, default 256)

The cluster's client config (``client.toml`` with the admin certificate) comes from ``-c``,
else ``$MPCKDC_ADMIN_CONFIG``, else ``DIR/cluster/client.toml`` with DIR from ``-d`` or
``./mpckdc-data`` (what ``mpckdc up`` creates). The realm comes from ``-r``, else the
``[admin] realm`` of that file. Output and error messages follow MIT kadmin's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
import shlex
import sys
import time
import tomllib
from pathlib import Path

from clients.admin_ops import (
    BULK_BATCH,
    AdminError,
    PrincipalExists,
    PrincipalMissing,
    PrincipalSpec,
    RealmAdmin,
    key_info_text,
)
from kdc.keyservice.base import (
    DISALLOW_ALL_TIX,
    DISALLOW_FORWARDABLE,
    DISALLOW_POSTDATED,
    DISALLOW_RENEWABLE,
    DISALLOW_SVR,
    REQUIRES_PREAUTH,
    PrincipalEntry,
)

PROG = "mpckdc admin"
DEFAULT_DIR = "./mpckdc-data"
DEFAULT_MAX_LIFE = 10 * 3600  # what the realm applies when a principal has none (kdc/realm)
DEFAULT_MAX_RENEWABLE = 7 * 86400

# MIT kadmin flag names: +name sets the attribute, -name clears it; "allow_*" are inverted.
_FLAGS = {
    "requires_preauth": (REQUIRES_PREAUTH, False),
    "allow_tix": (DISALLOW_ALL_TIX, True),
    "allow_forwardable": (DISALLOW_FORWARDABLE, True),
    "allow_renewable": (DISALLOW_RENEWABLE, True),
    "allow_svr": (DISALLOW_SVR, True),
    "allow_postdated": (DISALLOW_POSTDATED, True),
}


class UsageError(Exception):
    pass


# -- argument helpers ---------------------------------------------------------------------------


def parse_time(text: str, now: float | None = None) -> int | None:
    """An absolute time: ``never``, ``now``, POSIX seconds, ``YYYY-MM-DD[ HH:MM[:SS]]`` (UTC),
    or ``now+DURATION`` / ``+DURATION`` (MIT duration syntax)."""
    from kdc.realm import parse_duration

    now = time.time() if now is None else now
    t = text.strip()
    if t.lower() == "never":
        return None
    if t.lower() == "now":
        return int(now)
    if t.lower().startswith("now"):
        t = t[3:].strip()
    if t.startswith("+"):
        return int(now) + parse_duration(t[1:].strip())
    if t.isdigit():
        return int(t)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return int(dt.datetime.strptime(t, fmt).replace(tzinfo=dt.UTC).timestamp())
        except ValueError:
            continue
    raise UsageError(f'Invalid date specification "{text}".')


def parse_life(text: str) -> int:
    from kdc.realm import DurationError, parse_duration

    try:
        return parse_duration(text)
    except DurationError:
        raise UsageError(f'Invalid duration "{text}".') from None


def parse_etypes(text: str) -> list[int]:
    from kdc.crypto import parse_enctype_list

    try:
        etypes = parse_enctype_list(text)
    except (KeyError, ValueError):
        raise UsageError(f'Invalid enctype list "{text}"') from None
    if not etypes:
        raise UsageError("empty enctype list")
    return etypes


class _Args:
    """Walks MIT-style arguments: options with values, {+|-}flags, then positionals."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = list(argv)
        self.i = 0

    def more(self) -> bool:
        return self.i < len(self.argv)

    def peek(self) -> str:
        return self.argv[self.i]

    def take(self) -> str:
        v = self.argv[self.i]
        self.i += 1
        return v

    def value(self, opt: str) -> str:
        if not self.more():
            raise UsageError(f"option {opt} needs a value")
        return self.take()


def _flag(arg: str, add: set[str], remove: set[str]) -> bool:
    if len(arg) < 2 or arg[0] not in "+-" or arg[1:] not in _FLAGS:
        return False
    attr, inverted = _FLAGS[arg[1:]]
    setting = (arg[0] == "+") != inverted
    (add if setting else remove).add(attr)
    (remove if setting else add).discard(attr)
    return True


# -- output -------------------------------------------------------------------------------------


def _date(ts: int | None) -> str:
    if ts is None:
        return "[never]"
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.gmtime(ts)).replace("GMT", "UTC")


def _life(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days} day{'s' if days != 1 else ''} {h:02d}:{m:02d}:{s:02d}"


def format_principal(entry: PrincipalEntry, who: str) -> str:
    """MIT kadmin getprinc's layout. Keys are listed by version and enctype only."""
    lines = [
        f"Principal: {entry.name}",
        f"Expiration date: {_date(entry.expiration)}",
        f"Last password change: {_date(entry.modified)}",
        f"Password expiration date: {_date(entry.pw_expiration)}",
        f"Maximum ticket life: {_life(entry.max_life or DEFAULT_MAX_LIFE)}",
        f"Maximum renewable life: {_life(entry.max_renewable_life or DEFAULT_MAX_RENEWABLE)}",
        f"Last modified: {_date(entry.modified)} ({who})",
        "Last successful authentication: [never]",
        "Last failed authentication: [never]",
        "Failed password attempts: 0",
        f"Number of keys: {len(entry.keys)}",
    ]
    lines += [f"Key: {key_info_text(k)}" for k in entry.keys]
    lines.append("Key custody: shares on 3 MPC nodes (no key exists in one place)")
    lines.append(f"Attributes: {' '.join(sorted(entry.attributes))}".rstrip())
    lines.append("Policy: [none]")
    return "\n".join(lines)


# -- the verbs ----------------------------------------------------------------------------------


def _read_password(name: str) -> str:
    """Prompt twice like MIT (from the terminal, or two lines of standard input)."""
    prompts = (f'Enter password for principal "{name}": ',
               f'Re-enter password for principal "{name}": ')
    answers = []
    for prompt in prompts:
        if sys.stdin.isatty():
            answers.append(getpass.getpass(prompt))
        else:
            print(prompt, end="", flush=True)
            line = sys.stdin.readline()
            print()
            if not line:
                raise AdminError("Cannot read password", name)
            answers.append(line.rstrip("\n"))
    if answers[0] != answers[1]:
        raise AdminError("Password mismatch", name)
    return answers[0]


async def cmd_addprinc(admin: RealmAdmin, argv: list[str]) -> int:
    a = _Args(argv)
    password = None
    randkey = False
    etypes = None
    add: set[str] = set()
    remove: set[str] = set()
    fields: dict = {}
    while a.more() and a.peek()[:1] in "-+" and a.peek() != "-":
        opt = a.take()
        if opt == "-pw":
            password = a.value(opt)
        elif opt == "-randkey":
            randkey = True
        elif opt == "-nokey":
            raise UsageError("-nokey is not supported: every principal has keys")
        elif opt == "-e":
            etypes = parse_etypes(a.value(opt))
        elif opt == "-maxlife":
            fields["max_life"] = parse_life(a.value(opt))
        elif opt == "-maxrenewlife":
            fields["max_renewable_life"] = parse_life(a.value(opt))
        elif opt == "-expire":
            fields["expiration"] = parse_time(a.value(opt))
        elif opt == "-pwexpire":
            fields["pw_expiration"] = parse_time(a.value(opt))
        elif opt in ("-policy", "-kvno"):
            raise UsageError(f"{opt} is not supported")
        elif opt == "-clearpolicy":
            pass
        elif not _flag(opt, add, remove):
            raise UsageError(f"unknown option {opt}")
    if a.i != len(a.argv) - 1:
        raise UsageError("usage: add_principal [options] principal")
    if password is not None and randkey:
        raise UsageError("give -pw or -randkey, not both")
    name = admin.canonical(a.take())
    spec = PrincipalSpec(frozenset(add), **fields)
    print(f"No policy specified for {name}; defaulting to no policy", file=sys.stderr)
    if password is None and not randkey:
        password = _read_password(name)
    try:
        await admin.add_principal(name, password=password, mpc_random=randkey,
                                  etypes=etypes or (18, 17), spec=spec)
    except AdminError as exc:
        return _mit_error("add_principal", exc, f'while creating "{name}".')
    finally:
        password = None
    print(f'Principal "{name}" created.')
    return 0


async def cmd_delprinc(admin: RealmAdmin, argv: list[str]) -> int:
    force = "-force" in argv
    rest = [x for x in argv if x != "-force"]
    if len(rest) != 1:
        raise UsageError("usage: delete_principal [-force] principal")
    name = admin.canonical(rest[0])
    if not force:
        print(f'Are you sure you want to delete the principal "{name}"? (yes/no): ', end="",
              flush=True)
        answer = sys.stdin.readline().strip()
        if answer.lower() != "yes":
            print(f'Principal "{name}" not deleted')
            return 1
    try:
        await admin.delete(name)
    except AdminError as exc:
        return _mit_error("delete_principal", exc, f'while deleting principal "{name}".')
    print(f'Principal "{name}" deleted.')
    print("Make sure that you have removed this principal from all ACLs before reusing.")
    return 0


async def cmd_cpw(admin: RealmAdmin, argv: list[str]) -> int:
    a = _Args(argv)
    password = None
    randkey = False
    etypes = None
    while a.more() and a.peek().startswith("-"):
        opt = a.take()
        if opt == "-pw":
            password = a.value(opt)
        elif opt == "-randkey":
            randkey = True
        elif opt == "-e":
            etypes = parse_etypes(a.value(opt))
        elif opt == "-keepold":
            raise UsageError("-keepold is not supported")
        else:
            raise UsageError(f"unknown option {opt}")
    if a.i != len(a.argv) - 1:
        raise UsageError("usage: change_password [-randkey] [-pw password] principal")
    name = admin.canonical(a.take())
    if await admin.get(name) is None:
        return _mit_error("change_password", PrincipalMissing(name),
                          f'while changing password for "{name}".')
    if password is None and not randkey:
        password = _read_password(name)
    try:
        await admin.change_key(name, password=password, randkey=randkey, etypes=etypes)
    except AdminError as exc:
        return _mit_error("change_password", exc, f'while changing password for "{name}".')
    finally:
        password = None
    if randkey:
        print(f'Key for "{name}" randomized.')
    else:
        print(f'Password for "{name}" changed.')
    return 0


async def cmd_modprinc(admin: RealmAdmin, argv: list[str]) -> int:
    a = _Args(argv)
    add: set[str] = set()
    remove: set[str] = set()
    fields: dict = {}
    while a.more() and a.peek()[:1] in "-+":
        opt = a.take()
        if opt == "-maxlife":
            fields["max_life"] = parse_life(a.value(opt))
        elif opt == "-maxrenewlife":
            fields["max_renewable_life"] = parse_life(a.value(opt))
        elif opt == "-expire":
            fields["expiration"] = parse_time(a.value(opt))
        elif opt == "-pwexpire":
            fields["pw_expiration"] = parse_time(a.value(opt))
        elif not _flag(opt, add, remove):
            raise UsageError(f"unknown option {opt}")
    if a.i != len(a.argv) - 1:
        raise UsageError("usage: modify_principal [options] principal")
    name = admin.canonical(a.take())
    try:
        await admin.modify(name, add=add, remove=remove, **fields)
    except AdminError as exc:
        return _mit_error("modify_principal", exc, f'while getting "{name}".')
    print(f'Principal "{name}" modified.')
    return 0


async def cmd_getprinc(admin: RealmAdmin, argv: list[str]) -> int:
    argv = [x for x in argv if x != "-terse"]
    if len(argv) != 1:
        raise UsageError("usage: get_principal principal")
    name = admin.canonical(argv[0])
    entry = await admin.get(name)
    if entry is None:
        return _mit_error("get_principal", PrincipalMissing(name), f'while retrieving "{name}".')
    print(format_principal(entry, admin.who))
    return 0


async def cmd_listprincs(admin: RealmAdmin, argv: list[str]) -> int:
    if len(argv) > 1:
        raise UsageError("usage: list_principals [expression]")
    for name in await admin.list(argv[0] if argv else "*"):
        print(name)
    return 0


async def cmd_ktadd(admin: RealmAdmin, argv: list[str]) -> int:
    a = _Args(argv)
    keytab = os.environ.get("KRB5_KTNAME")
    etypes = None
    quiet = False
    while a.more() and a.peek().startswith("-"):
        opt = a.take()
        if opt in ("-k", "-t"):
            keytab = a.value(opt)
        elif opt == "-e":
            etypes = parse_etypes(a.value(opt))
        elif opt == "-q":
            quiet = True
        elif opt == "-norandkey":
            print(
                f"{PROG}: ktadd -norandkey refused: nobody holds the current keys (they exist "
                "only as shares on the three MPC nodes), so they cannot be exported; run ktadd "
                "without -norandkey to create new keys (kvno + 1) and write those",
                file=sys.stderr,
            )
            return 1
        elif opt == "-glob":
            raise UsageError("-glob is not supported")
        else:
            raise UsageError(f"unknown option {opt}")
    if not a.more():
        raise UsageError("usage: ktadd [-k keytab] [-q] [-e keysaltlist] principal ...")
    if keytab is None:
        raise UsageError("no keytab: give -k KEYTAB (or set KRB5_KTNAME)")
    path = keytab[len("WRFILE:"):] if keytab.startswith("WRFILE:") else keytab
    path = path[len("FILE:"):] if path.startswith("FILE:") else path
    status = 0
    while a.more():
        name = admin.canonical(a.take())
        try:
            _entry, written = await admin.change_key(name, keytab=path, etypes=etypes)
        except AdminError as exc:
            status = _mit_error("kadmin", exc, f'while changing {name}\'s key')
            continue
        if not quiet:
            from kdc.crypto import enctype_name

            for kvno, etype in written:
                print(f"Entry for principal {name} with kvno {kvno}, encryption type "
                      f"{enctype_name(etype)} added to keytab WRFILE:{path}.")
    return status


async def cmd_bulk_addprinc(admin: RealmAdmin, argv: list[str]) -> int:
    a = _Args(argv)
    count = None
    fmt = "user{i:04d}"
    start = 0
    password = None
    randkey = False
    keytab = None
    etypes = None
    concurrency = 32
    batch = BULK_BATCH
    add: set[str] = set()
    remove: set[str] = set()
    while a.more():
        opt = a.take()
        if opt == "--count":
            count = int(a.value(opt))
        elif opt == "--format":
            fmt = a.value(opt)
        elif opt == "--start":
            start = int(a.value(opt))
        elif opt == "--concurrency":
            concurrency = int(a.value(opt))
        elif opt == "--batch":
            batch = int(a.value(opt))
            if not 1 <= batch <= 4096:
                raise UsageError("--batch must be from 1 to 4096")
        elif opt == "-pw":
            password = a.value(opt)
        elif opt == "-randkey":
            randkey = True
        elif opt == "-k":
            keytab = a.value(opt)
        elif opt == "-e":
            etypes = parse_etypes(a.value(opt))
        elif not _flag(opt, add, remove):
            raise UsageError(f"unknown option {opt}")
    if count is None or not 1 <= count <= 1_000_000:
        raise UsageError("--count N (1..1000000) is required")
    if (password is not None) + randkey != 1:
        raise UsageError("give -pw PASSWORD or -randkey")
    try:
        names = [fmt.format(i=i) for i in range(start, start + count)]
    except (KeyError, IndexError, ValueError):
        raise UsageError("--format must use {i}, e.g. 'user{i:04d}'") from None
    if len(set(names)) != len(names):
        raise UsageError("--format gives the same name twice")
    began = time.monotonic()
    def progress(done: int) -> None:
        rate = done / max(time.monotonic() - began, 1e-9)
        print(f"  {done}/{count} principals ({rate:.0f}/s)", file=sys.stderr, flush=True)

    spec = PrincipalSpec(frozenset(add))
    try:
        done = await admin.bulk_add(
            names, password=password, keytab=keytab if randkey else None,
            etypes=etypes or (18, 17), spec=spec, concurrency=concurrency, batch=batch,
            progress=progress)
    except AdminError as exc:
        return _mit_error("add_principal", exc, "while creating principals in bulk.")
    if randkey and keytab is None:
        pass
    secs = time.monotonic() - began
    print(f"{done} principals created in {secs:.1f} s ({done / max(secs, 1e-9):.0f}/s)"
          + (f"; keys in {keytab}" if keytab and randkey else "") + ".")
    return 0


VERBS = {
    "addprinc": cmd_addprinc, "add_principal": cmd_addprinc, "ank": cmd_addprinc,
    "delprinc": cmd_delprinc, "delete_principal": cmd_delprinc,
    "cpw": cmd_cpw, "change_password": cmd_cpw,
    "modprinc": cmd_modprinc, "modify_principal": cmd_modprinc,
    "getprinc": cmd_getprinc, "get_principal": cmd_getprinc,
    "listprincs": cmd_listprincs, "list_principals": cmd_listprincs, "get_principals": cmd_listprincs,
    "ktadd": cmd_ktadd, "xst": cmd_ktadd,
    "bulk-addprinc": cmd_bulk_addprinc,
}


def _mit_error(where: str, exc: AdminError, suffix: str) -> int:
    print(f"{where}: {exc.code} {suffix}", file=sys.stderr)
    return 1


# -- entry point --------------------------------------------------------------------------------


def find_config(config: str | None, directory: str | None) -> Path:
    if config:
        return Path(config)
    env = os.environ.get("MPCKDC_ADMIN_CONFIG")
    if env:
        return Path(env)
    return Path(directory or DEFAULT_DIR) / "cluster" / "client.toml"


def config_realm(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    realm = doc.get("admin", {}).get("realm")
    return realm if isinstance(realm, str) and realm else None


async def run(config: Path, realm: str, verb: str, argv: list[str]) -> int:
    from mpc.admin_client import AdminError as NodeRefused
    from mpc.client import MpcError

    admin = RealmAdmin(config, realm)
    try:
        return await VERBS[verb](admin, argv)
    except (MpcError, NodeRefused) as exc:
        print(f"{PROG}: cannot complete the request on the MPC nodes: {exc}", file=sys.stderr)
        return 1
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    config = directory = realm = query = None
    while argv and argv[0] in ("-c", "-r", "-d", "-q"):
        opt = argv.pop(0)
        if not argv:
            print(f"{PROG}: option {opt} needs a value", file=sys.stderr)
            return 2
        value = argv.pop(0)
        if opt == "-c":
            config = value
        elif opt == "-r":
            realm = value
        elif opt == "-d":
            directory = value
        else:
            query = value
    if query is not None:
        argv = shlex.split(query) + argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.split("\n\n", 1)[1], file=sys.stderr)
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f'{PROG}: Unknown request "{verb}".  Type "?" for a request list.', file=sys.stderr)
        return 2
    path = find_config(config, directory)
    if not path.exists():
        print(f"{PROG}: no cluster client config at {path} (run `mpckdc up` or `mpckdc init` "
              "first, or give -c client.toml)", file=sys.stderr)
        return 1
    realm = realm or config_realm(path)
    if not realm:
        print(f"{PROG}: no realm: give -r REALM ({path} has no [admin] realm)", file=sys.stderr)
        return 1
    try:
        return asyncio.run(run(path, realm, verb, rest))
    except UsageError as exc:
        print(f"{PROG} {verb}: {exc}", file=sys.stderr)
        return 2
    except (PrincipalExists, PrincipalMissing, AdminError) as exc:
        return _mit_error(verb, exc, "")
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:
        print(f"{PROG} {verb}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
