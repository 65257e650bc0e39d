"""The SHA-1 compression function (FIPS 180-4 §6.1.2) as a boolean circuit.

``compress(b, state, block)`` maps a 160-wire chaining value and a 512-wire message block to the
next chaining value, so HMAC can start from precomputed ipad/opad states. The message schedule
is XOR only; the round functions use one AND per bit (Ch = d ^ (b & (c ^ d)),
Maj = ((b ^ c) & (b ^ d)) ^ b); everything else that costs is the mod-2^32 addition.

Two adder arrangements:

* ``"ripple"``: ripple-carry adders, fewest AND gates: 11,215 AND, AND-depth 2,165.
* ``"prefix"``: the round sum ROTL5(a) + f + e + K + W is built so that only the newest value
  ``a`` sits on the critical path, with adders fitted to when their input bits arrive
  (``adders.prefix_bits``). ``Y = e + K + W`` (``e`` is four rounds old) is summed early,
  ``Z = f + Y`` as soon as ``f`` (one AND on ``b``, the previous ``a``) is known, and the late
  ``ROTL5(a)`` meets one two-operand adder. A carry-save compressor in front of that last
  adder would cost its own AND layer; fully reduced operands let the low bits of each new
  ``a``, which its adder delivers first, start the next round early: 40,755 AND, AND-depth
  390 (under 5 per round). The former arrangement (3:2 compressors and one Sklansky adder)
  had 21,395 AND at depth 487: twice the gates for a fifth fewer rounds, the right trade
  where rounds, not gates, cost (SPEC "The MPC engine").

Wire order: 32-bit big-endian words, MSB first (wire 0 of a word = bit 31); the 160-wire state
is H0..H4, the 512-wire block is W0..W15, as the bytes of SHA-1 are laid out.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpc.circuits.adders import (
    Bits,
    and_bit,
    const_bits,
    csa_bits,
    lsb_first,
    maj,
    msb_first,
    prefix_bits,
    ripple_bits,
    xor_bit,
)
from mpc.circuits.sbox import GateBuilder

# FIPS 180-4 §4.2.1
ROUND_CONSTANTS = (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6)
IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)
ADDERS = ("prefix", "ripple")


def _rotl(x: Bits, r: int) -> Bits:
    """ROTL^r on an LSB-first word (no gates)."""
    n = len(x)
    return [x[(j - r) % n] for j in range(n)]


def _xor_words(b: GateBuilder, *words: Bits) -> Bits:
    out = list(words[0])
    for w in words[1:]:
        out = [xor_bit(b, x, y) for x, y in zip(out, w, strict=True)]
    return out


def _round_function(b: GateBuilder, t: int, x: Bits, y: Bits, z: Bits) -> Bits:
    """f_t(x, y, z) of FIPS 180-4 §4.1.1 with one AND per bit for Ch and Maj."""
    if t < 20:  # Ch(x, y, z) = (x & y) ^ (~x & z) = z ^ (x & (y ^ z))
        return [
            xor_bit(b, zi, and_bit(b, xi, xor_bit(b, yi, zi)))
            for xi, yi, zi in zip(x, y, z, strict=True)
        ]
    if 40 <= t < 60:  # Maj(x, y, z) = ((x ^ y) & (x ^ z)) ^ x
        return [maj(b, xi, yi, zi) for xi, yi, zi in zip(x, y, z, strict=True)]
    return _xor_words(b, x, y, z)  # Parity


def message_schedule(b: GateBuilder, block: Sequence[int]) -> list[Bits]:
    """W_0..W_79 (FIPS 180-4 §6.1.2 step 1) as LSB-first words; XOR only."""
    if len(block) != 512:
        raise ValueError("a SHA-1 block is 512 wires")
    w = [lsb_first(block[32 * i : 32 * i + 32]) for i in range(16)]
    for t in range(16, 80):
        w.append(_rotl(_xor_words(b, w[t - 3], w[t - 8], w[t - 14], w[t - 16]), 1))
    return w


def compress(
    b: GateBuilder, state_wires: Sequence[int], block_wires: Sequence[int], adder: str = "prefix"
) -> list[int]:
    """One SHA-1 compression: 160 state wires + 512 block wires -> 160 new state wires."""
    if len(state_wires) != 160:
        raise ValueError("the SHA-1 state is 160 wires")
    if adder not in ADDERS:
        raise ValueError(f"adder must be one of {ADDERS}")
    h = [lsb_first(state_wires[32 * i : 32 * i + 32]) for i in range(5)]
    w = message_schedule(b, block_wires)
    a, bb, c, d, e = h
    for t in range(80):
        k = const_bits(ROUND_CONSTANTS[t // 20])
        f = _round_function(b, t, bb, c, d)
        if adder == "ripple":
            # late operands last: e, K, W are known early; f needs b; ROTL5(a) is the newest
            acc = ripple_bits(b, ripple_bits(b, e, w[t]), k)
            acc = ripple_bits(b, ripple_bits(b, acc, f), _rotl(a, 5))
        else:
            y = prefix_bits(b, *csa_bits(b, e, w[t], k))
            acc = prefix_bits(b, _rotl(a, 5), prefix_bits(b, f, y))
        a, bb, c, d, e = acc, a, _rotl(bb, 30), c, d
    add = ripple_bits if adder == "ripple" else prefix_bits
    out = [add(b, hi, vi) for hi, vi in zip(h, (a, bb, c, d, e), strict=True)]
    return [wire for word in out for wire in msb_first(b, word)]


def iv_bits() -> list[int]:
    """The SHA-1 initial value as 160 MSB-first bits (for tests and public inputs)."""
    return [(v >> (31 - i)) & 1 for v in IV for i in range(32)]


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF


def reference_compress(state: bytes, block: bytes) -> bytes:
    """Plain SHA-1 compression on bytes (FIPS 180-4 §6.1.2): the oracle for the circuit.

    ``hashlib`` does not expose the compression function; tests check this one against
    ``hashlib.sha1`` on whole messages.
    """
    h = [int.from_bytes(state[4 * i : 4 * i + 4], "big") for i in range(5)]
    w = [int.from_bytes(block[4 * i : 4 * i + 4], "big") for i in range(16)]
    for t in range(16, 80):
        w.append(_rotl32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1))
    a, b, c, d, e = h
    for t in range(80):
        if t < 20:
            f = d ^ (b & (c ^ d))
        elif 40 <= t < 60:
            f = (b & c) | (b & d) | (c & d)
        else:
            f = b ^ c ^ d
        total = _rotl32(a, 5) + f + e + ROUND_CONSTANTS[t // 20] + w[t]
        a, b, c, d, e = total & 0xFFFFFFFF, a, _rotl32(b, 30), c, d
    return b"".join(
        ((x + y) & 0xFFFFFFFF).to_bytes(4, "big") for x, y in zip(h, (a, b, c, d, e), strict=True)
    )
