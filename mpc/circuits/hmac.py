"""HMAC-SHA1-96 (RFC 2104, truncated as RFC 3962 / RFC 3961 §5.3 use it) as a circuit.

The key-dependent first blocks are compressed once per key, outside the request path: the
caller supplies ``inner_state`` = SHA-1 state after compressing K ^ ipad and ``outer_state``
= the state after K ^ opad (160 wires each, shares in MPC). Per message only the message
blocks (already SHA-1 padded, with the 64-byte key block counted in the length, see
:func:`sha1_padding`) and one outer compression are evaluated: for a 216-byte message that is
4 inner + 1 outer compression in sequence.

Output: the first 96 wires of HMAC-SHA1 (H0..H2 of the outer hash); the builder removes the
gates of the unused H3, H4 additions.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpc.circuits.sbox import GateBuilder
from mpc.circuits.sha1 import compress, iv_bits

BLOCK_BYTES = 64
DIGEST_BYTES = 20
MAC_BITS = 96


def sha1_padding(message_len_bytes: int, prefix_len: int = BLOCK_BYTES) -> bytes:
    """SHA-1 padding (FIPS 180-4 §5.1.1) for a message after ``prefix_len`` earlier bytes.

    Returns the bytes to append: 0x80, zeros, and the 64-bit big-endian bit length of
    prefix + message; prefix + message + padding is a multiple of 64 bytes.
    """
    if message_len_bytes < 0 or prefix_len < 0 or prefix_len % BLOCK_BYTES:
        raise ValueError("lengths must be non-negative and the prefix whole blocks")
    total = prefix_len + message_len_bytes
    zeros = (BLOCK_BYTES - (total + 9) % BLOCK_BYTES) % BLOCK_BYTES
    return b"\x80" + bytes(zeros) + (8 * total).to_bytes(8, "big")


def padded_blocks(message: bytes, prefix_len: int = BLOCK_BYTES) -> list[bytes]:
    """The padded message cut into 64-byte blocks (what the circuit's block inputs carry)."""
    data = message + sha1_padding(len(message), prefix_len)
    return [data[i : i + BLOCK_BYTES] for i in range(0, len(data), BLOCK_BYTES)]


def block_count(message_len_bytes: int, prefix_len: int = BLOCK_BYTES) -> int:
    """How many inner compressions a message of this length takes (key block excluded)."""
    return (message_len_bytes + len(sha1_padding(message_len_bytes, prefix_len))) // BLOCK_BYTES


def _split_blocks(message_blocks: Sequence[Sequence[int]] | Sequence[int]) -> list[list[int]]:
    if message_blocks and isinstance(message_blocks[0], int):
        flat = list(message_blocks)  # one flat wire list
        if len(flat) % 512:
            raise ValueError("message wires must be whole 512-bit blocks")
        return [flat[i : i + 512] for i in range(0, len(flat), 512)]
    blocks = [list(block) for block in message_blocks]
    if not blocks or any(len(block) != 512 for block in blocks):
        raise ValueError("need at least one 512-wire message block")
    return blocks


def key_states(
    b: GateBuilder, key_wires: Sequence[int], adder: str = "ripple"
) -> tuple[list[int], list[int]]:
    """The per-key precomputation in the circuit: SHA-1 states after K^ipad and K^opad.

    RFC 2104 §2: the key (at most 64 bytes; Kerberos Ki is 16 or 32) is zero-padded to one
    block and XORed with 0x36.. / 0x5c..; each is one compression from the public IV. Done once
    per key, so the cheap ripple adders are the default.
    """
    if len(key_wires) % 8 or not 0 < len(key_wires) <= 8 * BLOCK_BYTES:
        raise ValueError("an HMAC key here is 1..64 whole bytes")
    consts = {0: b.const(0), 1: b.const(1)}
    iv = [consts[bit] for bit in iv_bits()]
    padded = list(key_wires) + [consts[0]] * (8 * BLOCK_BYTES - len(key_wires))
    states = []
    for pad_byte in (0x36, 0x5C):
        block = [b.not_(w) if (pad_byte >> (7 - i % 8)) & 1 else w for i, w in enumerate(padded)]
        states.append(compress(b, iv, block, adder=adder))
    return states[0], states[1]


def inner_digest(
    b: GateBuilder,
    inner_state: Sequence[int],
    message_blocks: Sequence[Sequence[int]] | Sequence[int],
    adder: str = "prefix",
) -> list[int]:
    """SHA-1 chaining over the padded message blocks from the ipad state: 160 wires."""
    return inner_states(b, inner_state, message_blocks, adder)[-1]


def inner_states(
    b: GateBuilder,
    inner_state: Sequence[int],
    message_blocks: Sequence[Sequence[int]] | Sequence[int],
    adder: str = "prefix",
) -> list[list[int]]:
    """The chaining value after each message block (160 wires each), first block first."""
    states = [list(inner_state)]
    for block in _split_blocks(message_blocks):
        states.append(compress(b, states[-1], block, adder=adder))
    return states[1:]


def outer_digest(
    b: GateBuilder, outer_state: Sequence[int], inner: Sequence[int], adder: str = "prefix"
) -> list[int]:
    """The outer hash: one compression of the 20-byte inner digest, padded (RFC 2104)."""
    pad = sha1_padding(DIGEST_BYTES, BLOCK_BYTES)
    consts = {0: b.const(0), 1: b.const(1)}
    pad_wires = [consts[(byte >> (7 - k)) & 1] for byte in pad for k in range(8)]
    return compress(b, outer_state, list(inner) + pad_wires, adder=adder)


def hmac_sha1_96(
    b: GateBuilder,
    inner_state: Sequence[int],
    outer_state: Sequence[int],
    message_blocks: Sequence[Sequence[int]] | Sequence[int],
    adder: str = "prefix",
) -> list[int]:
    """HMAC-SHA1 truncated to 96 bits; ``message_blocks`` are 512-wire padded blocks.

    ``message_blocks`` may also be one flat wire list whose length is a multiple of 512.
    """
    if len(inner_state) != 160 or len(outer_state) != 160:
        raise ValueError("HMAC states are 160 wires")
    inner = inner_digest(b, inner_state, message_blocks, adder=adder)
    return outer_digest(b, outer_state, inner, adder=adder)[:MAC_BITS]
