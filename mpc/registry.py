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
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from mpc.builder import CircuitBuilder
from mpc.circuit import Circuit

DEFAULT_HMAC_BLOCKS = 4


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
    return sorted(_BUILDERS)


def canonical(name: str) -> str:
    """Validate ``name`` (``base`` or ``base:arg``) and return it; UnknownCircuit if unknown."""
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


@lru_cache(maxsize=64)
def get(name: str) -> Circuit:
    """The circuit called ``name``, built on first use and cached."""
    base, _, arg = canonical(name).partition(":")
    return _BUILDERS[base](arg or None)
