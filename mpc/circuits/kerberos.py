"""RFC 3961 §5.3 / RFC 3962 encryption and decryption for etypes 17/18 as circuits.

This is how the MPC key service uses a long-term key it holds only as shares:

* ``precompute`` (once per key, at registration): DK(base, usage|0xAA) = Ke and
  DK(base, usage|0x55) = Ki (RFC 3961 §5.1, §5.3), the AES round keys of Ke, and the SHA-1
  states after the HMAC ipad/opad blocks of Ki (RFC 2104). Only these are stored (as shares);
  Kc is not needed by the key service.
* ``krb_encrypt`` (per message): AES-CBC-CTS under Ke (RFC 3962 §5) || HMAC-SHA1-96 under Ki
  over confounder|plaintext. The MAC covers the plaintext, so the CBC chain and the HMAC are
  independent and run side by side: the builder layers by AND depth, so the depth is the
  larger of the two (the HMAC for every realistic size), not their sum.
* ``krb_decrypt`` (per message): CTS decryption, HMAC of the recovered plaintext, tag
  comparison INSIDE the circuit, and every plaintext bit ANDed with the accept bit. A forged
  ciphertext opens to ok=0 and zeros, so the KDC is never a decryption or MAC oracle
  (SPEC "Threat model").

Wire order everywhere (CONTRACTS §6): a byte string of n bytes is 8n wires, wire 8*j + k =
bit 7 - k of byte j. Round keys are 128-wire blocks in FIPS-197 order; SHA-1 states are 160
wires H0..H4, big-endian words, MSB first.

The ``build_*_circuit`` factories fix the input and output order the MPC key service relies
on; they are cached per (kind, etype, size) because message sizes repeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from kdc.crypto import KE, KI, nfold, profile, usage_constant
from mpc.builder import CircuitBuilder
from mpc.circuit import Circuit
from mpc.circuits.aes import decrypt_block, encrypt_block, expand_key
from mpc.circuits.compare import equal
from mpc.circuits.hmac import (
    BLOCK_BYTES,
    MAC_BITS,
    hmac_sha1_96,
    inner_states,
    outer_digest,
    sha1_padding,
)
from mpc.circuits.sbox import GateBuilder
from mpc.circuits.sha1 import IV, compress

BLOCK_BITS = 128  # AES block
MAC_BYTES = 12  # RFC 3962 §6: HMAC-SHA1 truncated to 96 bits
CONFOUNDER_BYTES = 16
STATE_BITS = 160  # SHA-1 chaining value
# Largest conf|plaintext the factories build a circuit for. Building is Python work linear in
# the size (a 300-byte message: ~2-4 s and ~20 MB of gate arrays; 1,500 bytes: ~15-30 s, ~90
# MB); the KDC's own messages (tickets, AS-REP enc-parts) stay far below this, and the cap
# bounds what a hostile size can cost. Callers facing untrusted sizes (a ticket in a TGS-REQ)
# should cap lower and rate-limit building new sizes.
MAX_MESSAGE_BYTES = 4096
# Circuits kept per factory; distinct sizes are few (ticket and reply sizes repeat).
CIRCUIT_CACHE_SIZE = 32

_IPAD = 0x36  # RFC 2104
_OPAD = 0x5C

Wires = list[int]


def _round_key_count(etype: int) -> int:
    """Nr + 1 for the etype's AES key size (FIPS-197 §5: 11 for AES-128, 15 for AES-256)."""
    return profile(etype).key_bytes // 4 + 7


def _const_bytes(b: GateBuilder, data: bytes) -> Wires:
    zero, one = b.const(0), b.const(1)
    return [one if (byte >> (7 - k)) & 1 else zero for byte in data for k in range(8)]


def _blocks(wires: Sequence[int]) -> list[Wires]:
    return [list(wires[i : i + BLOCK_BITS]) for i in range(0, len(wires), BLOCK_BITS)]


def _xor(b: GateBuilder, x: Sequence[int], y: Sequence[int]) -> Wires:
    return [b.xor(p, q) for p, q in zip(x, y, strict=True)]


def _check_key_wires(etype: int, key_wires: Sequence[int]) -> int:
    n = profile(etype).key_bytes
    if len(key_wires) != 8 * n:
        raise ValueError(f"etype {etype} needs a {8 * n}-wire key")
    return n


def _check_round_keys(etype: int, round_keys: Sequence[Sequence[int]]) -> None:
    want = _round_key_count(etype)
    if len(round_keys) != want or any(len(k) != BLOCK_BITS for k in round_keys):
        raise ValueError(f"etype {etype} needs {want} round keys of {BLOCK_BITS} wires")


# -- key derivation ---------------------------------------------------------------------------


def _derive_random(
    b: GateBuilder, base_round_keys: Sequence[Sequence[int]], key_bytes: int, constant: bytes
) -> Wires:
    """DR(base, constant) truncated to key_bytes, from the base key's round keys.

    RFC 3961 §5.1: K1 = E(base, n-fold(constant, 16)), K(i+1) = E(base, Ki); for AES the
    "CBC with zero IV" of one block is the bare block cipher, and random-to-key is the
    identity (RFC 3962 §6). The first input block is public, so its AddRoundKey is free.
    """
    folded = constant if len(constant) == 16 else nfold(constant, 16)
    block = _const_bytes(b, folded)
    out: Wires = []
    while len(out) < 8 * key_bytes:
        block = encrypt_block(b, base_round_keys, block)
        out.extend(block)
    return out[: 8 * key_bytes]


def dk(b: GateBuilder, etype: int, base_key_wires: Sequence[int], constant: bytes) -> Wires:
    """DK(base key, constant) (RFC 3961 §5.1) for an AES etype; the base key is wires (shared).

    The base key schedule is built here; ``precompute`` shares one schedule between all the
    derivations of a key instead of calling this repeatedly.
    """
    n = _check_key_wires(etype, base_key_wires)
    return _derive_random(b, expand_key(b, list(base_key_wires)), n, constant)


# -- per-key precomputation -------------------------------------------------------------------


@dataclass(frozen=True)
class UsageMaterial:
    """Per-(key, usage) circuit material: wire ids (not values) of the stored secrets.

    ``ke_round_keys``: 11 (AES-128) or 15 (AES-256) lists of 128 wires, the expansion of Ke.
    ``ki_inner_state`` / ``ki_outer_state``: 160 wires each, the SHA-1 chaining value after
    compressing (Ki zero-padded to 64 bytes) XOR ipad / opad (RFC 2104).
    ``ke`` / ``ki``: the derived keys themselves (for tests; not stored by the key service).
    """

    ke_round_keys: list[Wires]
    ki_inner_state: Wires
    ki_outer_state: Wires
    ke: Wires | None = None
    ki: Wires | None = None

    def __repr__(self) -> str:
        return (
            f"UsageMaterial(round_keys={len(self.ke_round_keys)}, "
            f"states={len(self.ki_inner_state)}+{len(self.ki_outer_state)} wires)"
        )


def hmac_key_states(b: GateBuilder, key_wires: Sequence[int]) -> tuple[Wires, Wires]:
    """(inner, outer) SHA-1 states of an HMAC key of at most 64 bytes (RFC 2104 §2).

    Each is one compression from the public SHA-1 IV of (key zero-padded to 64 bytes) XOR
    ipad/opad; the pad bytes past the key are public constants.
    """
    if len(key_wires) % 8 or len(key_wires) > 8 * BLOCK_BYTES:
        raise ValueError("an HMAC-SHA1 key here is whole bytes, at most 64")
    iv = _const_bytes(b, b"".join(v.to_bytes(4, "big") for v in IV))
    padded = list(key_wires) + [b.const(0)] * (8 * BLOCK_BYTES - len(key_wires))
    states = []
    for pad in (_IPAD, _OPAD):
        block = _xor(b, padded, _const_bytes(b, bytes([pad]) * BLOCK_BYTES))
        states.append(compress(b, iv, block))
    return states[0], states[1]


def precompute(
    b: GateBuilder, etype: int, base_key_wires: Sequence[int], usages: Iterable[int]
) -> dict[int, UsageMaterial]:
    """Ke round keys and Ki HMAC states for each usage, from the shared base key.

    RFC 3961 §5.3: Ke = DK(base, usage | 0xAA), Ki = DK(base, usage | 0x55); RFC 3962 gives
    both the key length of the etype. One key schedule of the base key serves every
    derivation.
    """
    n = _check_key_wires(etype, base_key_wires)
    base_round_keys = expand_key(b, list(base_key_wires))
    out: dict[int, UsageMaterial] = {}
    for usage in usages:
        if usage in out:
            raise ValueError(f"usage {usage} listed twice")
        ke = _derive_random(b, base_round_keys, n, usage_constant(usage, KE))
        ki = _derive_random(b, base_round_keys, n, usage_constant(usage, KI))
        inner, outer = hmac_key_states(b, ki)
        out[usage] = UsageMaterial(expand_key(b, ke), inner, outer, ke=ke, ki=ki)
    return out


# -- RFC 3962 §5 CBC-CTS with a zero IV -------------------------------------------------------


def _message_blocks(n_bytes: int) -> tuple[int, int]:
    """(number of blocks m, length of the last block) of an n-byte CTS input."""
    if n_bytes < 16:
        raise ValueError("CBC-CTS input must be at least one 16-byte block")
    m = (n_bytes + 15) // 16
    return m, n_bytes - 16 * (m - 1)


def cts_encrypt(
    b: GateBuilder, round_keys: Sequence[Sequence[int]], data_wires: Sequence[int]
) -> Wires:
    """AES-CBC-CTS encryption with a zero IV (RFC 3962 §5); AND-depth m AES blocks.

    CBC over the input zero-padded to whole blocks; then the last two ciphertext blocks are
    swapped (also for a multiple of 16 bytes) and the new last block truncated to the length
    of the last input block. A 16-byte input is one plain block.
    """
    if len(data_wires) % 8:
        raise ValueError("CTS input must be whole bytes")
    m, last = _message_blocks(len(data_wires) // 8)
    zero = b.const(0)
    padded = list(data_wires) + [zero] * (8 * (16 * m) - len(data_wires))
    chain: list[Wires] = []
    prev: Sequence[int] | None = None
    for block in _blocks(padded):
        x = block if prev is None else _xor(b, block, prev)  # zero IV for the first block
        prev = encrypt_block(b, round_keys, x)
        chain.append(prev)
    if m == 1:
        return chain[0]
    out = [w for c in chain[:-2] for w in c]
    return out + chain[-1] + chain[-2][: 8 * last]


def cts_decrypt(
    b: GateBuilder, round_keys: Sequence[Sequence[int]], cipher_wires: Sequence[int]
) -> Wires:
    """Inverse of :func:`cts_encrypt` (RFC 3962 §5, zero IV).

    The second-to-last input block is the final CBC block C_m; decrypting it gives
    C_{m-1} XOR (P_m | 0...), which yields P_m and the bytes of C_{m-1} that encryption
    stole. All other blocks decrypt in parallel, so the AND-depth is two AES blocks (one when
    the length is a multiple of 16).
    """
    if len(cipher_wires) % 8:
        raise ValueError("CTS input must be whole bytes")
    m, last = _message_blocks(len(cipher_wires) // 8)
    data = list(cipher_wires)
    if m == 1:
        return decrypt_block(b, round_keys, data)
    head = _blocks(data[: 128 * (m - 2)])
    c_final = data[128 * (m - 2) : 128 * (m - 1)]
    tail = data[128 * (m - 1) :]
    d = decrypt_block(b, round_keys, c_final)
    p_last = _xor(b, d[: 8 * last], tail)
    c_prev = tail + d[8 * last :]  # C_{m-1}, restored
    chain = head + [c_prev]
    plain: Wires = []
    for i, c in enumerate(chain):
        x = decrypt_block(b, round_keys, c)
        plain.extend(x if i == 0 else _xor(b, x, chain[i - 1]))
    return plain + p_last


# -- RFC 3961 §5.3 encryption and decryption ---------------------------------------------------


def _hmac(b: GateBuilder, material: UsageMaterial, data_wires: Sequence[int]) -> Wires:
    """HMAC-SHA1-96(Ki, data) from the precomputed states; the SHA-1 padding is public."""
    n = len(data_wires) // 8
    padded = list(data_wires) + _const_bytes(b, sha1_padding(n, BLOCK_BYTES))
    return hmac_sha1_96(b, material.ki_inner_state, material.ki_outer_state, padded)


def krb_encrypt(
    b: GateBuilder, etype: int, material: UsageMaterial, conf_and_plaintext_wires: Sequence[int]
) -> Wires:
    """E(Ke, conf|plaintext) CBC-CTS || HMAC-SHA1(Ki, conf|plaintext)[:96 bits] (RFC 3961 §5.3).

    The CBC chain and the HMAC share no gates, so they occupy the same AND layers.
    """
    _check_round_keys(etype, material.ke_round_keys)
    data = list(conf_and_plaintext_wires)
    if len(data) % 8 or len(data) < 8 * CONFOUNDER_BYTES:
        raise ValueError("conf|plaintext must be whole bytes, at least the 16-byte confounder")
    return cts_encrypt(b, material.ke_round_keys, data) + _hmac(b, material, data)


def krb_decrypt(
    b: GateBuilder, etype: int, material: UsageMaterial, cipher_wires: Sequence[int]
) -> tuple[int, Wires]:
    """(ok, conf|plaintext AND ok) for an RFC 3961 §5.3 ciphertext (CTS body || 96-bit tag).

    The tag is compared inside the circuit (mpc.circuits.compare.equal); every plaintext bit is
    ANDed with ok, so a forged ciphertext reveals ok=0 and all zeros, never the decryption.
    """
    _check_round_keys(etype, material.ke_round_keys)
    data = list(cipher_wires)
    if len(data) % 8 or len(data) < 8 * (CONFOUNDER_BYTES + MAC_BYTES):
        raise ValueError("ciphertext must be whole bytes, at least confounder + tag")
    body, tag = data[: -8 * MAC_BYTES], data[-8 * MAC_BYTES :]
    plain = cts_decrypt(b, material.ke_round_keys, body)
    ok = equal(b, _hmac(b, material, plain), tag)[0]
    return ok, [b.and_(ok, w) for w in plain]


# -- circuit factories for the MPC key service ----------------------------------------------


def material_sizes(etype: int) -> tuple[int, int, int]:
    """Wire counts of the stored per-usage material: (Ke round keys, inner state, outer state).

    (1408, 160, 160) for etype 17, (1920, 160, 160) for 18: the sizes of outputs 3i..3i+2 of
    the precompute circuit and of inputs 0..2 of the encrypt and decrypt circuits.
    """
    return BLOCK_BITS * _round_key_count(etype), STATE_BITS, STATE_BITS


def _material_inputs(b: CircuitBuilder, etype: int) -> UsageMaterial:
    """Inputs 0, 1, 2 of the encrypt/decrypt circuits: round keys, inner, outer state."""
    key_bits, inner_bits, outer_bits = material_sizes(etype)
    keys = b.input(key_bits)
    inner = b.input(inner_bits)
    outer = b.input(outer_bits)
    return UsageMaterial(_blocks(keys), inner, outer)


def _check_size(n_bytes: int, minimum: int, maximum: int) -> int:
    n = int(n_bytes)
    if n != n_bytes or not minimum <= n <= maximum:
        raise ValueError(f"message size must be {minimum}..{maximum} bytes")
    return n


def build_precompute_circuit(etype: int, usages: Iterable[int] = (1, 2, 3)) -> Circuit:
    """The per-key precomputation circuit.

    Input 0: the base key (8 * key_bytes wires: 128 for etype 17, 256 for 18), shared.
    Outputs, for each usage in the given order, three values:
      3i + 0: Ke round keys concatenated (11 * 128 or 15 * 128 wires, round 0 first),
      3i + 1: Ki inner (ipad) SHA-1 state, 160 wires,
      3i + 2: Ki outer (opad) SHA-1 state, 160 wires.
    These are exactly inputs 0, 1, 2 of :func:`build_encrypt_circuit` and
    :func:`build_decrypt_circuit` for that usage.
    """
    return _build_precompute(int(etype), tuple(int(u) for u in usages))


@lru_cache(maxsize=CIRCUIT_CACHE_SIZE)
def _build_precompute(etype: int, usages: tuple[int, ...]) -> Circuit:
    b = CircuitBuilder()
    key = b.input(8 * profile(etype).key_bytes)
    for material in precompute(b, etype, key, usages).values():
        b.output([w for k in material.ke_round_keys for w in k])
        b.output(material.ki_inner_state)
        b.output(material.ki_outer_state)
    return b.build()


def build_encrypt_circuit(etype: int, n_bytes: int) -> Circuit:
    """RFC 3961 §5.3 encryption of n_bytes = len(confounder | plaintext) (16..4096).

    Inputs: 0 = Ke round keys concatenated (shared), 1 = Ki inner state (shared),
    2 = Ki outer state (shared), 3 = confounder | plaintext (8 * n_bytes wires; public to the
    front-end, shared as a public value).
    Output 0: ciphertext || 96-bit tag, 8 * (n_bytes + 12) wires (the EncryptedData.cipher
    octets).
    """
    return _build_encrypt(int(etype), _check_size(n_bytes, CONFOUNDER_BYTES, MAX_MESSAGE_BYTES))


@lru_cache(maxsize=CIRCUIT_CACHE_SIZE)
def _build_encrypt(etype: int, n_bytes: int) -> Circuit:
    b = CircuitBuilder()
    material = _material_inputs(b, etype)
    data = b.input(8 * n_bytes)
    b.output(krb_encrypt(b, etype, material, data))
    return b.build()


def build_decrypt_circuit(etype: int, n_bytes: int) -> Circuit:
    """RFC 3961 §5.3 decryption of an n_bytes ciphertext, 12-byte tag included (28..4108).

    Inputs: 0, 1, 2 as for :func:`build_encrypt_circuit`; 3 = the ciphertext (8 * n_bytes
    wires, public).
    Outputs: 0 = ok (1 wire: 1 iff the tag verifies), 1 = confounder | plaintext ANDed with
    ok (8 * (n_bytes - 12) wires; all zero when ok = 0).
    """
    return _build_decrypt(
        int(etype),
        _check_size(n_bytes, CONFOUNDER_BYTES + MAC_BYTES, MAX_MESSAGE_BYTES + MAC_BYTES),
    )


@lru_cache(maxsize=CIRCUIT_CACHE_SIZE)
def _build_decrypt(etype: int, n_bytes: int) -> Circuit:
    b = CircuitBuilder()
    material = _material_inputs(b, etype)
    cipher = b.input(8 * n_bytes)
    ok, plain = krb_decrypt(b, etype, material, cipher)
    b.output([ok])
    b.output(plain)
    return b.build()


# -- size-class circuits: one circuit per (etype, AES blocks, SHA-1 blocks) ------------------
#
# The KDC's messages come in many byte lengths; a circuit per length means a build (seconds)
# per new length. The class circuits below depend only on m = the number of 16-byte AES
# blocks and h = the number of 64-byte SHA-1 message blocks (key block excluded); everything
# that depends on the exact length is public and supplied as input by the caller
# (mpc.krbjobs): the zero padding of the CBC input, the SHA-1 padding, the CTS swap (encrypt)
# and the CTS tail mask (decrypt).


def size_class(n_bytes: int) -> tuple[int, int]:
    """(m, h) of an n-byte conf|plaintext: AES blocks and SHA-1 message blocks (RFC 2104:
    the 64-byte key block is counted in the SHA-1 length but is not one of the h blocks)."""
    from mpc.circuits.hmac import block_count

    n = _check_size(n_bytes, CONFOUNDER_BYTES, MAX_MESSAGE_BYTES)
    return (n + 15) // 16, block_count(n, BLOCK_BYTES)


def encrypt_class(h: int) -> tuple[int, int]:
    """The encrypt class circuit (m, h) that runs every conf|plaintext of at most h SHA-1
    blocks: m = 4h AES blocks (the most an h-block message has), at most the 4096-byte cap."""
    return min(4 * h, MAX_MESSAGE_BYTES // 16), h


# Encryptions of up to this many SHA-1 blocks may share one job on the class of the largest:
# an AS reply's ticket (3 blocks) and enc-part (4 blocks) then cost one batch, not two, and
# the smaller one's latency is hidden by the larger one the reply waits for anyway.
SHARED_ENCRYPT_BLOCKS = 4


def encrypt_family(n_bytes: int) -> int:
    """Which encryptions may share a job: 0 for up to SHARED_ENCRYPT_BLOCKS SHA-1 blocks,
    else the block count (a long message never drags short ones through its rounds)."""
    h = size_class(n_bytes)[1]
    return 0 if h <= SHARED_ENCRYPT_BLOCKS else h


def size_class_bytes(m: int, h: int) -> range:
    """The conf|plaintext lengths that fall in class (m, h) (empty if none)."""
    lo, hi = max(CONFOUNDER_BYTES, 16 * (m - 1) + 1), min(16 * m, MAX_MESSAGE_BYTES)
    ok = [n for n in range(lo, hi + 1) if size_class(n) == (m, h)]
    return range(ok[0], ok[-1] + 1) if ok else range(0)


def _check_class(m: int, h: int) -> tuple[int, int]:
    if not isinstance(m, int) or not isinstance(h, int) or not 1 <= m <= MAX_MESSAGE_BYTES // 16:
        raise ValueError("bad size class")
    if not size_class_bytes(m, h):
        raise ValueError(f"no message length has size class ({m}, {h})")
    return m, h


def build_encrypt_class_circuit(etype: int, m: int, h: int) -> Circuit:
    """RFC 3961 §5.3 encryption of any conf|plaintext of at most m AES and h SHA-1 blocks.

    Inputs: 0, 1, 2 = Ke round keys, Ki inner state, Ki outer state (shared, as
    :func:`build_encrypt_circuit`); public:
      3 = conf|plaintext zero-padded to 16*m bytes,
      4 = conf|plaintext with its SHA-1 padding, zero-padded to 64*h bytes (key block counted),
      5 = block selector, h bits zero-padded to whole bytes: bit j (MSB first) is 1 iff the
          padded message ends with block j + 1.
    Outputs: 0 = the CBC chain C_1..C_m with a zero IV (128*m wires); 1 = the 96-bit tag.
    The caller keeps the chain's first ceil(n/16) blocks (later ones only chain on zero
    blocks) and forms the CTS ciphertext (RFC 3962 §5): for two or more blocks the last two
    are swapped and the new last one cut to the length of the last input block.
    The inner digest is the chaining value the selector picks (one AND layer of 160*h gates
    when h > 1), so messages of different lengths run as one bit-sliced batch.
    """
    return _build_encrypt_class(int(etype), *_check_class(int(m), int(h)))


@lru_cache(maxsize=CIRCUIT_CACHE_SIZE)
def _build_encrypt_class(etype: int, m: int, h: int) -> Circuit:
    b = CircuitBuilder()
    _encrypt_class_gates(b, _material_inputs(b, etype), m, h)
    return b.build()


def _encrypt_class_gates(b: CircuitBuilder, material: UsageMaterial, m: int, h: int) -> None:
    """The public inputs, gates and outputs of the encrypt class circuit after its material."""
    data = b.input(BLOCK_BITS * m)
    message = b.input(8 * BLOCK_BYTES * h)
    select = b.input(8 * ((h + 7) // 8))
    chain: Wires = []
    prev: Sequence[int] | None = None
    for block in _blocks(data):
        x = block if prev is None else _xor(b, block, prev)  # zero IV (RFC 3962 §5)
        prev = encrypt_block(b, material.ke_round_keys, x)
        chain.extend(prev)
    b.output(chain)
    states = inner_states(b, material.ki_inner_state, message)
    digest = states[0]
    if h > 1:
        digest = [b.and_(select[0], w) for w in states[0]]
        for j in range(1, h):
            digest = [b.xor(d, b.and_(select[j], w)) for d, w in zip(digest, states[j],
                                                                     strict=True)]
    b.output(outer_digest(b, material.ki_outer_state, digest)[:MAC_BITS])


def build_decrypt_class_circuit(etype: int, m: int, h: int) -> Circuit:
    """RFC 3961 §5.3 decryption of any ciphertext whose conf|plaintext has size class (m, h).

    Inputs: 0, 1, 2 as above; public:
      3 = the first 16*(m-1) bytes of the CTS body (C_1..C_{m-2}, then C_m as CTS sends it),
      4 = the remaining tail bytes (the cut C_{m-1}) zero-padded to 16 bytes,
      5 = tail mask: 16 bytes, 0xFF for the tail's byte positions, 0x00 after,
      6 = SHA-1 padding vector, 64*h bytes: zero over the n message bytes, then the padding
          (0x80, zeros, bit length with the key block counted),
      7 = the 96-bit tag.
    For m = 1 (n = 16: an empty plaintext) there is no CTS: the inputs are the material,
    3 = the single block, 4 = the padding vector, 5 = the tag.
    Outputs: 0 = ok (1 iff the tag verifies, compared inside MPC); 1 = conf|plaintext
    zero-padded to 16*m bytes, ANDed with ok (all zero for a forgery).

    The tail mask and padding vector only place public zeros; a wrong one changes the
    message the tag is checked over, so it yields ok = 0 unless it recreates a message whose
    tag the caller already holds.
    """
    return _build_decrypt_class(int(etype), *_check_class(int(m), int(h)))


@lru_cache(maxsize=CIRCUIT_CACHE_SIZE)
def _build_decrypt_class(etype: int, m: int, h: int) -> Circuit:
    b = CircuitBuilder()
    _decrypt_class_gates(b, _material_inputs(b, etype), m, h)
    return b.build()


def _decrypt_class_gates(b: CircuitBuilder, material: UsageMaterial, m: int, h: int) -> None:
    """The public inputs, gates and outputs of the decrypt class circuit after its material."""
    keys = material.ke_round_keys
    if m == 1:
        block = b.input(BLOCK_BITS)
        pad_vec = b.input(8 * BLOCK_BYTES * h)
        tag = b.input(8 * MAC_BYTES)
        plain = decrypt_block(b, keys, block)
    else:
        head_and_final = b.input(BLOCK_BITS * (m - 1))
        tail = b.input(BLOCK_BITS)
        mask = b.input(BLOCK_BITS)
        pad_vec = b.input(8 * BLOCK_BYTES * h)
        tag = b.input(8 * MAC_BYTES)
        blocks = _blocks(head_and_final)
        head, c_final = blocks[:-1], blocks[-1]
        d = decrypt_block(b, keys, c_final)  # = C_{m-1} ^ (P_m | 0...)
        x = _xor(b, d, tail)
        p_last = [b.and_(mi, xi) for mi, xi in zip(mask, x, strict=True)]  # P_m | zeros
        c_prev = _xor(b, d, p_last)  # tail bytes, then the stolen bytes of C_{m-1}
        chain = head + [c_prev]
        plain = []
        for i, c in enumerate(chain):
            y = decrypt_block(b, keys, c)
            plain.extend(y if i == 0 else _xor(b, y, chain[i - 1]))
        plain.extend(p_last)
    zero = b.const(0)
    message = _xor(b, list(plain) + [zero] * (len(pad_vec) - len(plain)), pad_vec)
    mac = hmac_sha1_96(b, material.ki_inner_state, material.ki_outer_state, message)
    ok = equal(b, mac, tag)[0]
    b.output([ok])
    b.output([b.and_(ok, w) for w in plain])


def build_pair_circuit(dec_etype: int, dm: int, dh: int, enc_etype: int, em: int,
                       eh: int) -> Circuit:
    """A decrypt class circuit (dec_etype, dm, dh) and an encrypt class circuit (enc_etype,
    em, eh) side by side, as one circuit: one job, one batch section per round.

    Why: a login's PA-ENC-TIMESTAMP decryption runs beside its reply's encryption. As two
    jobs they travel as two chains of frames, and with one login at a time the second chain
    costs almost as much per round as the first (node CPU per frame, 3 nodes on 2 cores);
    side by side in one circuit, the decryption's gates ride in the encryption's rounds.
    Inputs: 0..2 = the decryption's material, 3..5 = the encryption's material (each as in
    :func:`build_encrypt_circuit`), then the decryption's public inputs and the
    encryption's (as in the two class circuits). Outputs: the decryption's (ok, plaintext),
    then the encryption's (chain, tag).
    """
    dm, dh = _check_class(int(dm), int(dh))
    em, eh = _check_class(int(em), int(eh))
    return _build_pair(int(dec_etype), dm, dh, int(enc_etype), em, eh)


@lru_cache(maxsize=CIRCUIT_CACHE_SIZE)
def _build_pair(dec_etype: int, dm: int, dh: int, enc_etype: int, em: int, eh: int) -> Circuit:
    b = CircuitBuilder()
    dec_material = _material_inputs(b, dec_etype)
    enc_material = _material_inputs(b, enc_etype)
    _decrypt_class_gates(b, dec_material, dm, dh)
    _encrypt_class_gates(b, enc_material, em, eh)
    return b.build()
