"""Circuits by name, so that every node (and the client) builds exactly the same circuit.

A job names its circuit; each node builds it on first use and caches it (building is
deterministic, so the three nodes get identical gate lists, layer sizes and labels).

Names and inputs (bit order of CONTRACTS §6: byte j bit 7-k on wire 8j+k):

* ``aes128-enc`` / ``aes128-dec``: (round keys 11x128 = 1408 bits, block 128) -> block 128
* ``aes256-enc`` / ``aes256-dec``: (round keys 15x128 = 1920 bits, block 128) -> block 128
  Round keys are pre-expanded (FIPS-197 §5.2 w[0..4(Nr+1)) as bytes, in encryption order).
* ``hmac-sha1-96[:B]``: (ipad state 160, opad state 160, B padded message blocks 512*B) -> 96.
  B defaults to 4 (a 216-byte message after the 64-byte key block: the RFC 3962 checksum of
  a typical ticket). The states are SHA-1 chaining values after the ipad/opad key blocks.
* ``sha1-compress``: (chaining value 160, block 512) -> 160.
* ``and-layer[:WxD]`` (tests, bench): (x W bits, y W bits) -> W bits, D pure AND layers of W
  gates each: z_1 = x & y, z_{d+1} = z_d & y. Default 64x1.

Kerberos (RFC 3961 §5.3 / RFC 3962, :mod:`mpc.circuits.kerberos`; etype 17 or 18):

* ``krb-pre/<etype>``: base key -> (Ke round keys, Ki inner, Ki outer) for usages 1, 2, 3
  (``build_precompute_circuit``).
* ``krb-enc/<etype>/<m>x<h>`` and ``krb-dec/<etype>/<m>x<h>``: the size-class circuits
  (``build_encrypt_class_circuit`` / ``build_decrypt_class_circuit``), m AES blocks and h
  SHA-1 blocks; what :mod:`mpc.krbjobs` runs. Names via :func:`krb_encrypt_name` /
  :func:`krb_decrypt_name` (from the message length) so callers never format them.
* ``krb-pair/<etype>/<m>x<h>/<etype>/<m>x<h>``: a decrypt and an encrypt class circuit side
  by side as one circuit (``build_pair_circuit``): one login's PA-ENC-TIMESTAMP decryption
  and reply encryptions as one job. Name via :func:`krb_pair_name`.
* ``krb-enc/<etype>/<n_bytes>`` and ``krb-dec/<etype>/<n_bytes>``: the exact-length circuits
  (``build_encrypt_circuit`` / ``build_decrypt_circuit``).

:func:`get` builds a circuit at most once per process (concurrent callers wait for the one
build) and, when :func:`set_cache_dir` named a directory, keeps it on disk as
``<dir>/<name>-<digest of the circuit code>.npz``: a restarted node loads it instead of
rebuilding, and any change to the circuit-building code changes the digest (a stale file is
never used). Building is deterministic, so the three nodes hold identical circuits.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mpc.builder import CircuitBuilder
from mpc.circuit import Circuit

log = logging.getLogger("mpckdc.mpc.registry")

DEFAULT_HMAC_BLOCKS = 4
KRB_ETYPES = (17, 18)
KRB_USAGES = (1, 2, 3)  # RFC 4120 §7.5.1: PA-ENC-TIMESTAMP, tickets, AS-REP enc-part
MEMORY_CACHE_SIZE = 64


class UnknownCircuit(KeyError):
    """No circuit by that name."""


def _split(wires: list[int], size: int) -> list[list[int]]:
    return [wires[i:i + size] for i in range(0, len(wires), size)]


def _aes(rounds: int, decrypt: bool) -> Circuit:
    from mpc.circuits import aes

    b = CircuitBuilder()
    keys = _split(b.input(128 * (rounds + 1)), 128)
    block = b.input(128)
    fn = aes.decrypt_block if decrypt else aes.encrypt_block
    b.output(fn(b, keys, block))
    return b.build()


def _hmac(blocks: int) -> Circuit:
    from mpc.circuits import hmac

    b = CircuitBuilder()
    inner = b.input(160)
    outer = b.input(160)
    message = b.input(512 * blocks)
    b.output(hmac.hmac_sha1_96(b, inner, outer, _split(message, 512)))
    return b.build()


def _sha1() -> Circuit:
    from mpc.circuits import sha1

    b = CircuitBuilder()
    state = b.input(160)
    block = b.input(512)
    b.output(sha1.compress(b, state, block))
    return b.build()


def _and_layer(width: int, depth: int) -> Circuit:
    b = CircuitBuilder()
    x = b.input(width)
    y = b.input(width)
    z = x
    for _ in range(depth):
        z = [b.and_(zi, yi) for zi, yi in zip(z, y, strict=True)]
    b.output(z)
    return b.build()


def _parse_dims(arg: str) -> tuple[int, int]:
    w, _, d = arg.partition("x")
    width, depth = int(w), int(d or 1)
    if not (1 <= width <= 1 << 20 and 1 <= depth <= 10_000):
        raise ValueError("and-layer dimensions out of range")
    return width, depth


_BUILDERS: dict[str, Callable[[str | None], Circuit]] = {
    "aes128-enc": lambda a: _aes(10, False),
    "aes128-dec": lambda a: _aes(10, True),
    "aes256-enc": lambda a: _aes(14, False),
    "aes256-dec": lambda a: _aes(14, True),
    "hmac-sha1-96": lambda a: _hmac(int(a) if a else DEFAULT_HMAC_BLOCKS),
    "sha1-compress": lambda a: _sha1(),
    "and-layer": lambda a: _and_layer(*_parse_dims(a or "64x1")),
}


def names() -> list[str]:
    return sorted(_BUILDERS) + ["krb-dec", "krb-enc", "krb-pair", "krb-pre"]


# -- Kerberos names -----------------------------------------------------------------------------

_KRB_RE = re.compile(r"^krb-(pre|enc|dec)/(\d{1,2})(?:/(\d{1,4})(?:x(\d{1,3}))?)?$")
_PAIR_RE = re.compile(r"^krb-pair/(\d{1,2})/(\d{1,4})x(\d{1,3})/(\d{1,2})/(\d{1,4})x(\d{1,3})$")


def krb_precompute_name(etype: int) -> str:
    """``krb-pre/<etype>``: the per-key precomputation for usages 1, 2, 3."""
    return f"krb-pre/{int(etype)}"


def krb_encrypt_name(etype: int, n_bytes: int) -> str:
    """The smallest encrypt class circuit for an ``n_bytes`` conf|plaintext."""
    from mpc.circuits.kerberos import size_class

    return krb_encrypt_class_name(etype, size_class(n_bytes)[1])


def krb_encrypt_class_name(etype: int, h: int) -> str:
    """The encrypt class circuit for conf|plaintexts of at most ``h`` SHA-1 blocks."""
    from mpc.circuits.kerberos import encrypt_class

    m, h = encrypt_class(h)
    return f"krb-enc/{int(etype)}/{m}x{h}"


def krb_decrypt_name(etype: int, n_bytes: int) -> str:
    """The size-class decrypt circuit for an ``n_bytes`` ciphertext (12-byte tag included)."""
    from mpc.circuits.kerberos import MAC_BYTES, size_class

    m, h = size_class(n_bytes - MAC_BYTES)
    return f"krb-dec/{int(etype)}/{m}x{h}"


def krb_encrypt_exact_name(etype: int, n_bytes: int) -> str:
    """The exact-length encrypt circuit (``build_encrypt_circuit``)."""
    return f"krb-enc/{int(etype)}/{int(n_bytes)}"


def krb_decrypt_exact_name(etype: int, n_bytes: int) -> str:
    """The exact-length decrypt circuit (``build_decrypt_circuit``)."""
    return f"krb-dec/{int(etype)}/{int(n_bytes)}"


def krb_pair_name(dec_name: str, enc_name: str) -> str:
    """``krb-pair/...``: the class circuits ``krb-dec/<e>/<m>x<h>`` and
    ``krb-enc/<e>/<m>x<h>`` side by side as one circuit (``build_pair_circuit``)."""
    dec, enc = dec_name.split("/"), enc_name.split("/")
    if len(dec) != 3 or len(enc) != 3 or dec[0] != "krb-dec" or enc[0] != "krb-enc":
        raise UnknownCircuit(f"{dec_name} + {enc_name}")
    return f"krb-pair/{dec[1]}/{dec[2]}/{enc[1]}/{enc[2]}"


def is_krb_crypto(name: str) -> bool:
    """True for the krb-enc/krb-dec/krb-pair circuits (what the "frontend" role may run)."""
    return name.startswith(("krb-enc/", "krb-dec/", "krb-pair/"))


def krb_material_inputs(name: str) -> int:
    """How many leading inputs of a krb-enc/krb-dec/krb-pair circuit are stored key material
    (Ke round keys, Ki inner, Ki outer; twice for a pair); the others are public."""
    return 6 if name.startswith("krb-pair/") else 3


def _krb_builder(name: str) -> Callable[[], Circuit]:
    """A zero-argument builder for a Kerberos circuit name; UnknownCircuit if invalid."""
    from mpc.circuits import kerberos as k

    pair = _PAIR_RE.match(name)
    if pair is not None:
        fields = pair.groups()
        nums = [int(f) for f in fields]
        if any(str(v) != f for v, f in zip(nums, fields, strict=True)) or \
                nums[0] not in KRB_ETYPES or nums[3] not in KRB_ETYPES:
            raise UnknownCircuit(name)
        try:
            k._check_class(nums[1], nums[2])
            k._check_class(nums[4], nums[5])
        except ValueError as e:
            raise UnknownCircuit(name) from e
        return lambda: _uncached(k._build_pair)(*nums)
    match = _KRB_RE.match(name)
    if match is None:
        raise UnknownCircuit(name)
    kind, etype, a, c = match.group(1), int(match.group(2)), match.group(3), match.group(4)
    if etype not in KRB_ETYPES or str(etype) != match.group(2):
        raise UnknownCircuit(name)
    try:
        if kind == "pre":
            if a is not None:
                raise UnknownCircuit(name)
            return lambda: _uncached(k._build_precompute)(etype, KRB_USAGES)
        if a is None or a != str(int(a)):
            raise UnknownCircuit(name)
        if c is not None:
            m, h = int(a), int(c)
            if c != str(h):
                raise UnknownCircuit(name)
            k._check_class(m, h)
            fn = k._build_encrypt_class if kind == "enc" else k._build_decrypt_class
            return lambda: _uncached(fn)(etype, m, h)
        n = int(a)
        if kind == "enc":
            k._check_size(n, k.CONFOUNDER_BYTES, k.MAX_MESSAGE_BYTES)
            return lambda: _uncached(k._build_encrypt)(etype, n)
        k._check_size(n, k.CONFOUNDER_BYTES + k.MAC_BYTES, k.MAX_MESSAGE_BYTES + k.MAC_BYTES)
        return lambda: _uncached(k._build_decrypt)(etype, n)
    except ValueError as e:
        raise UnknownCircuit(name) from e


def _uncached(fn: Callable) -> Callable:
    """The factory behind an ``lru_cache``: the registry keeps its own (bounded) cache, so
    the kerberos module's caches would only hold a second copy of large gate arrays."""
    return getattr(fn, "__wrapped__", fn)


def canonical(name: str) -> str:
    """Validate ``name`` (``base`` or ``base:arg``) and return it; UnknownCircuit if unknown."""
    if not isinstance(name, str):
        raise UnknownCircuit(repr(name))
    if name.startswith("krb-"):
        _krb_builder(name)
        return name
    base, _, arg = name.partition(":")
    if base not in _BUILDERS or (arg and base not in ("hmac-sha1-96", "and-layer")):
        raise UnknownCircuit(name)
    if base == "hmac-sha1-96" and arg and not (arg.isdigit() and 1 <= int(arg) <= 64):
        raise UnknownCircuit(name)
    if base == "and-layer" and arg:
        try:
            _parse_dims(arg)
        except ValueError as e:
            raise UnknownCircuit(name) from e
    return name


def _build(name: str) -> Circuit:
    if name.startswith("krb-"):
        return _krb_builder(name)()
    base, _, arg = canonical(name).partition(":")
    return _BUILDERS[base](arg or None)


# -- cache: memory (per process) and disk (per node) -------------------------------------------

_lock = threading.Lock()
_memory: OrderedDict[str, Circuit] = OrderedDict()
_building: dict[str, threading.Lock] = {}
_cache_dir: Path | None = None
_code_digest: str | None = None
CODE_MODULES = ("mpc/builder.py", "mpc/circuit.py", "mpc/fusion.py", "mpc/kernels.py",
                "mpc/registry.py", "mpc/circuits", "kdc/crypto")  # kdc.crypto: DK constants


def set_cache_dir(directory: str | os.PathLike | None) -> None:
    """Keep built circuits as files in ``directory`` (created 0700); None turns it off."""
    global _cache_dir
    if directory is None:
        _cache_dir = None
        return
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    _cache_dir = d


def code_digest() -> str:
    """SHA-256 over the source of every module that shapes a circuit (builder, scheduler of
    gates, circuit definitions): a different digest means cached circuits may differ."""
    global _code_digest
    if _code_digest is None:
        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256()
        files: list[Path] = []
        for rel in CODE_MODULES:
            p = root / rel
            files.extend(sorted(p.rglob("*.py")) + sorted(p.rglob("*.txt")) if p.is_dir()
                         else [p])
        for f in files:
            h.update(str(f.relative_to(root)).encode() + b"\0")
            h.update(f.read_bytes())
        _code_digest = h.hexdigest()[:16]
    return _code_digest


def cache_path(name: str) -> Path | None:
    if _cache_dir is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return _cache_dir / f"{safe}-{code_digest()}.npz"


def save_circuit(circuit: Circuit, path: Path) -> None:
    """Write ``circuit`` atomically (temp file + rename) as an .npz of its arrays."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, n_wires=np.int64(circuit.n_wires), gates=circuit.gates,
                 bounds=circuit.bounds,
                 in_lens=np.array([len(w) for w in circuit.input_wires], np.int64),
                 in_wires=_concat(circuit.input_wires),
                 out_lens=np.array([len(w) for w in circuit.output_wires], np.int64),
                 out_wires=_concat(circuit.output_wires))
    os.replace(tmp, path)


def load_circuit(path: Path) -> Circuit:
    with np.load(path, allow_pickle=False) as z:
        return Circuit(n_wires=int(z["n_wires"]), input_wires=_split_at(z["in_wires"],
                                                                        z["in_lens"]),
                       output_wires=_split_at(z["out_wires"], z["out_lens"]),
                       gates=np.ascontiguousarray(z["gates"], dtype=np.int32),
                       bounds=np.asarray(z["bounds"], dtype=np.int64))


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return (np.concatenate([np.asarray(p, np.int64) for p in parts]) if parts
            else np.zeros(0, np.int64))


def _split_at(flat: np.ndarray, lens: np.ndarray) -> list[np.ndarray]:
    out, pos = [], 0
    for n in lens:
        out.append(np.asarray(flat[pos:pos + int(n)], dtype=np.int64))
        pos += int(n)
    return out


def cached_names() -> list[str]:
    """Names of the circuits in the disk cache that match the current code digest."""
    if _cache_dir is None:
        return []
    suffix = f"-{code_digest()}.npz"
    out = []
    for p in sorted(_cache_dir.glob(f"*{suffix}")):
        name = _unsafe_name(p.name[: -len(suffix)])
        if name is not None:
            out.append(name)
    return out


def _unsafe_name(safe: str) -> str | None:
    """Inverse of the file-name escaping for the names we cache (krb-*, aes*, hmac, ...)."""
    name = safe.replace("_", "/") if safe.startswith("krb-") else safe.replace("_", ":")
    try:
        canonical(name)
    except UnknownCircuit:
        return None
    return name


def in_memory(name: str) -> bool:
    """True when :func:`get` returns at once (the circuit is built and in memory)."""
    with _lock:
        return name in _memory


def is_cached(name: str) -> bool:
    """True when :func:`get` would not build (in memory or on disk)."""
    with _lock:
        if name in _memory:
            return True
    p = cache_path(name)
    return p is not None and p.exists()


def get(name: str) -> Circuit:
    """The circuit called ``name``: from memory, else from the disk cache, else built (once,
    however many threads ask at the same time) and cached."""
    canonical(name)
    with _lock:
        c = _memory.get(name)
        if c is not None:
            _memory.move_to_end(name)
            return c
        build_lock = _building.setdefault(name, threading.Lock())
    with build_lock:
        with _lock:
            c = _memory.get(name)
        if c is None:
            c = _load_or_build(name)
            with _lock:
                _memory[name] = c
                while len(_memory) > MEMORY_CACHE_SIZE:
                    _memory.popitem(last=False)
        with _lock:
            _building.pop(name, None)
        return c


def _load_or_build(name: str) -> Circuit:
    path = cache_path(name)
    if path is not None and path.exists():
        try:
            return load_circuit(path)
        except (OSError, ValueError, KeyError) as e:
            log.warning("circuit cache file for %s unreadable (%s); rebuilding", name,
                        type(e).__name__)
    c = _build(name)
    if path is not None:
        try:
            save_circuit(c, path)
        except OSError as e:
            log.warning("cannot cache circuit %s on disk: %s", name, type(e).__name__)
    return c
