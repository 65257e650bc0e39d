"""Equality test in the circuit: the MAC check on decryption (RFC 3961 §5.3).

The KDC must not reveal a computed MAC (that would make it a MAC oracle for forged
ciphertexts), so the received and computed tags are compared inside MPC and only the one
accept bit is opened. n-bit equality costs n-1 AND at AND-depth ceil(log2 n): 95 AND, depth 7
for the 96-bit HMAC-SHA1-96 tag.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpc.circuits.sbox import GateBuilder


def equal(b: GateBuilder, x: Sequence[int], y: Sequence[int]) -> list[int]:
    """[w] with w = 1 iff x == y bitwise: XNOR per bit, then a balanced AND tree."""
    if len(x) != len(y) or not x:
        raise ValueError("equal() needs two non-empty wire lists of one length")
    layer = [b.not_(b.xor(xi, yi)) for xi, yi in zip(x, y, strict=True)]
    while len(layer) > 1:
        nxt = [b.and_(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        if len(layer) % 2:
            nxt.append(layer[-1])
        layer = nxt
    return layer
