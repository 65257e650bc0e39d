"""AES (FIPS-197) block encryption, decryption and key expansion as boolean circuits.

Only SubBytes costs AND gates (the depth-16 S-box of :mod:`mpc.circuits.sbox`: 34 AND, AND-depth
4); ShiftRows, MixColumns and AddRoundKey are linear and free in 3-party replicated sharing.
AES-128 encryption is 160 S-boxes = 5,440 AND at AND-depth 40; AES-256 is 224 S-boxes = 7,616
AND at depth 56. On the links an S-box costs 19 words, not 34: its four rounds reshare 4, 3, 4
and 8 sums of products (:mod:`mpc.fusion`), so AES-128 sends 3,040 per block. Round keys are normally expanded once per key (``expand_key``, in MPC) and
stored as shares, so a request pays only the rounds.

Wire order: a 16-byte block is 128 wires, wire 8*j + k = bit 7 - k of byte j (FIPS-197 input
byte order, MSB first). State byte j is row j % 4, column j // 4 (FIPS-197 §3.4).
"""

from __future__ import annotations

from collections.abc import Sequence

from mpc.circuits.sbox import GateBuilder, inv_sub_byte, sub_byte

Byte = list[int]

# FIPS-197 §5.2: Rcon[i] first byte, i = 1..10
_RCON = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


def _bytes_of(wires: Sequence[int]) -> list[Byte]:
    return [list(wires[8 * j : 8 * j + 8]) for j in range(len(wires) // 8)]


def _flat(byte_list: Sequence[Byte]) -> list[int]:
    return [w for byte in byte_list for w in byte]


def _xor_bytes(b: GateBuilder, *items: Byte) -> Byte:
    out = list(items[0])
    for item in items[1:]:
        out = [b.xor(x, y) for x, y in zip(out, item, strict=True)]
    return out


def _xtime(b: GateBuilder, x: Byte) -> Byte:
    """Multiply by 0x02 in GF(2^8) mod x^8+x^4+x^3+x+1 (FIPS-197 §4.2.1); x is MSB first."""
    hi = x[0]
    return [x[1], x[2], x[3], b.xor(x[4], hi), b.xor(x[5], hi), x[6], b.xor(x[7], hi), hi]


def _add_round_key(b: GateBuilder, state: Sequence[int], key: Sequence[int]) -> list[int]:
    if len(key) != 128:
        raise ValueError("a round key is 128 wires")
    return [b.xor(x, k) for x, k in zip(state, key, strict=True)]


def _shift_rows(state: list[Byte], inverse: bool = False) -> list[Byte]:
    # FIPS-197 §5.1.2 / §5.3.1: row r rotates left (right when inverse) by r columns
    sign = -1 if inverse else 1
    return [state[(j % 4) + 4 * ((j // 4 + sign * (j % 4)) % 4)] for j in range(16)]


def _mix_column(b: GateBuilder, a: Sequence[Byte]) -> list[Byte]:
    """One column times {03}x^3 + {01}x^2 + {01}x + {02} (FIPS-197 §5.1.3), 108 XOR.

    b_r = 2a_r ^ 3a_{r+1} ^ a_{r+2} ^ a_{r+3} = xtime(a_r ^ a_{r+1}) ^ a_{r+1} ^ (a_{r+2} ^ a_{r+3}):
    the four neighbour sums t_r = a_r ^ a_{r+1} are shared by two outputs each (the textbook
    shared-subexpression form; the naive sum costs 140 XOR per column).
    """
    t = [_xor_bytes(b, a[r], a[(r + 1) % 4]) for r in range(4)]
    return [
        _xor_bytes(b, _xtime(b, t[r]), a[(r + 1) % 4], t[(r + 2) % 4]) for r in range(4)
    ]


def _mix_columns(b: GateBuilder, state: list[Byte]) -> list[Byte]:
    # FIPS-197 §5.1.3, column by column
    out: list[Byte] = []
    for c in range(4):
        out.extend(_mix_column(b, state[4 * c : 4 * c + 4]))
    return out


def _inv_mix_columns(b: GateBuilder, state: list[Byte]) -> list[Byte]:
    # FIPS-197 §5.3.3: {0b}x^3 + {0d}x^2 + {09}x + {0e} = ({03}x^3 + {01}x^2 + {01}x + {02}) *
    # ({04}x^2 + {05}) mod x^4 + 1 (the factorisation used by bitsliced AES implementations):
    # first a_r ^= 4*(a_r ^ a_{r+2}), then MixColumns. About 170 XOR per column instead of 292.
    out: list[Byte] = []
    for c in range(4):
        a = state[4 * c : 4 * c + 4]
        u = _xtime(b, _xtime(b, _xor_bytes(b, a[0], a[2])))
        v = _xtime(b, _xtime(b, _xor_bytes(b, a[1], a[3])))
        pre = [_xor_bytes(b, a[0], u), _xor_bytes(b, a[1], v),
               _xor_bytes(b, a[2], u), _xor_bytes(b, a[3], v)]
        out.extend(_mix_column(b, pre))
    return out


def encrypt_block(
    b: GateBuilder, round_key_wires: Sequence[Sequence[int]], block: Sequence[int]
) -> list[int]:
    """AES encryption of one 128-wire block under 11 (AES-128), 13 or 15 (AES-256) round keys."""
    nr = len(round_key_wires) - 1
    if nr not in (10, 12, 14) or len(block) != 128:
        raise ValueError("need 11, 13 or 15 round keys and a 128-wire block")
    state = _bytes_of(_add_round_key(b, block, round_key_wires[0]))
    for rnd in range(1, nr + 1):
        state = _shift_rows([sub_byte(b, x) for x in state])
        if rnd != nr:
            state = _mix_columns(b, state)
        state = _bytes_of(_add_round_key(b, _flat(state), round_key_wires[rnd]))
    return _flat(state)


def decrypt_block(
    b: GateBuilder, round_key_wires: Sequence[Sequence[int]], block: Sequence[int]
) -> list[int]:
    """AES decryption (FIPS-197 §5.3 inverse cipher); round keys in encryption order."""
    nr = len(round_key_wires) - 1
    if nr not in (10, 12, 14) or len(block) != 128:
        raise ValueError("need 11, 13 or 15 round keys and a 128-wire block")
    state = _bytes_of(_add_round_key(b, block, round_key_wires[nr]))
    for rnd in range(nr - 1, -1, -1):
        state = [inv_sub_byte(b, x) for x in _shift_rows(state, inverse=True)]
        state = _bytes_of(_add_round_key(b, _flat(state), round_key_wires[rnd]))
        if rnd != 0:
            state = _inv_mix_columns(b, state)
    return _flat(state)


def expand_key(b: GateBuilder, key_wires: Sequence[int]) -> list[list[int]]:
    """FIPS-197 §5.2 KeyExpansion in the circuit: 128/192/256 key wires -> Nr+1 round keys.

    AES-128 uses 40 S-boxes (1,360 AND, AND-depth 40); AES-256 52 S-boxes (1,768 AND, depth 52).
    """
    nk = len(key_wires) // 32
    if nk not in (4, 6, 8) or len(key_wires) != 32 * nk:
        raise ValueError("an AES key is 128, 192 or 256 wires")
    nr = nk + 6
    words = [list(key_wires[32 * i : 32 * i + 32]) for i in range(nk)]
    for i in range(nk, 4 * (nr + 1)):
        temp = words[i - 1]
        if i % nk == 0:
            rotated = temp[8:] + temp[:8]  # RotWord
            temp = _flat([sub_byte(b, x) for x in _bytes_of(rotated)])
            rcon = _RCON[i // nk - 1]
            temp = [
                b.not_(w) if (rcon >> (7 - k)) & 1 else w for k, w in enumerate(temp[:8])
            ] + temp[8:]
        elif nk > 6 and i % nk == 4:
            temp = _flat([sub_byte(b, x) for x in _bytes_of(temp)])
        words.append([b.xor(x, y) for x, y in zip(words[i - nk], temp, strict=True)])
    return [_flat(words[4 * r : 4 * r + 4]) for r in range(nr + 1)]
