"""RFC 3961 §5.3 / RFC 3962 encryption and decryption under shared keys, as MPC jobs.

What the MPC key service calls. The long-term key never leaves the nodes: each item names
the precomputed per-usage material (``mpc.handles.usage_material``: Ke round keys, Ki ipad
and opad SHA-1 states) and the nodes run a size-class circuit (``mpc.registry``
``krb-enc/<etype>/<m>x<h>``, ``krb-dec/<etype>/<m>x<h>``) on it. Everything that depends on
the exact message length is public and prepared here: the zero padding of the CBC input,
the SHA-1 padding (RFC 2104 with the 64-byte key block counted), the CTS block swap and cut
of RFC 3962 §5 (encrypt: on the revealed CBC chain), the SHA-1 block selector (encrypt)
and the CTS tail mask (decrypt).

Items of one call that share a circuit run as ONE bit-sliced job (one instance per item,
per-instance key handles), several jobs at once; results come back in item order.
Decryptions share a circuit when they have the same etype and size class; encryptions of up
to ``SHARED_ENCRYPT_BLOCKS`` SHA-1 blocks share the class circuit of the longest of them (a
public selector picks each instance's inner digest), so an AS reply's ticket and enc-part
cost one job. :func:`pair_many` runs a group of decryptions and a group of encryptions as
one ``krb-pair`` job (a login's PA-ENC-TIMESTAMP and reply, one login at a time). Output
equals ``kdc.crypto.encrypt``/``decrypt`` byte for byte for the same confounder.

Decryption checks the tag inside MPC; only ok and, if ok, the plaintext are revealed
(SPEC "Threat model": never a decryption or MAC oracle). A forged or corrupted ciphertext
gives None.

Errors: :class:`mpc.client.MpcUnavailable` (node down, timeout: the KDC answers
KDC_ERR_SVC_UNAVAILABLE), :class:`mpc.client.MpcJobError` (e.g. code ``UNKNOWN_HANDLE``: no
material for that key/usage), ``ValueError`` for items that cannot be encrypted (bad
confounder length, message too long) - raised before anything is sent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from mpc import handles as hnames
from mpc import jobs, registry
from mpc.circuits.hmac import BLOCK_BYTES, sha1_padding
from mpc.circuits.kerberos import (
    CONFOUNDER_BYTES,
    MAC_BYTES,
    MAX_MESSAGE_BYTES,
    encrypt_class,
    encrypt_family,
    size_class,
)
from mpc.client import AsyncMpcClient, Handles, MpcUnavailable

MAX_INSTANCES_PER_JOB = 64 * 64  # larger groups are cut into several jobs

KeySpec = Any  # (ke, ki-in, ki-out) handle names, or an object with principal, kvno, etype


def material_handles(key: KeySpec, etype: int, usage: int) -> tuple[str, str, str]:
    """The (Ke round keys, Ki inner, Ki outer) handles of ``key`` for ``usage``.

    ``key`` is either that triple already (``mpc.handles.usage_material(...)``) or anything
    with ``principal``, ``kvno`` and ``etype`` attributes (``kdc.keyservice.base.KeyRef``).
    """
    if isinstance(key, tuple | list) and len(key) == 3 and all(isinstance(h, str) for h in key):
        return tuple(key)  # type: ignore[return-value]
    principal, kvno = getattr(key, "principal", None), getattr(key, "kvno", None)
    if principal is None or kvno is None:
        raise TypeError("key must be a (ke, ki-in, ki-out) handle triple or a KeyRef")
    if getattr(key, "etype", etype) != etype:
        raise ValueError("key etype does not match the item's etype")
    return hnames.usage_material(principal, kvno, etype, usage)


async def encrypt_many(client: AsyncMpcClient,
                       items: Sequence[tuple[KeySpec, int, int, bytes, bytes | None]], *,
                       timeout: float | None = None) -> list[bytes]:
    """Encrypt each ``(key, usage, etype, plaintext, confounder)``; returns the
    EncryptedData.cipher octets (CTS ciphertext || 12-byte HMAC-SHA1-96 tag), in order.

    ``key``: see :func:`material_handles`. ``confounder``: 16 bytes, or None for
    ``os.urandom(16)``. Raises as described in the module docstring.
    """
    prepared = _prepare_encryptions(items)
    # One job per (etype, family) on the class of its longest message (kerberos.encrypt_family).
    groups: dict[tuple[int, int], list[int]] = {}
    for idx, (_, etype, data) in enumerate(prepared):
        groups.setdefault((etype, encrypt_family(len(data))), []).append(idx)
    out: list[bytes | None] = [None] * len(prepared)

    async def run_group(group: tuple[int, int], idxs: list[int]) -> None:
        chosen = [prepared[i] for i in idxs]
        name, inputs = _encrypt_job(chosen)
        arrays = await client.run(name, inputs, words=(len(idxs) + 63) // 64, mode="reveal",
                                  timeout=timeout)
        for i, r in zip(idxs, _encrypt_results(arrays, chosen), strict=True):
            out[i] = r

    await _run_groups(groups, run_group)
    return out  # type: ignore[return-value]


async def decrypt_many(client: AsyncMpcClient,
                       items: Sequence[tuple[KeySpec, int, int, bytes]], *,
                       timeout: float | None = None) -> list[bytes | None]:
    """Decrypt each ``(key, usage, etype, ciphertext)``; returns the plaintext (confounder
    removed) or None where the integrity check failed (RFC 3961 §5.3; also for a ciphertext
    too short to hold a confounder and a tag). The tag is checked inside MPC.
    """
    out: list[bytes | None] = [None] * len(items)
    prepared = _prepare_decryptions(items)
    groups: dict[str, list[int]] = {}
    for idx, (_, ciphertext, etype) in prepared.items():
        groups.setdefault(registry.krb_decrypt_name(etype, len(ciphertext)), []).append(idx)

    async def run_group(name: str, idxs: list[int]) -> None:
        chosen = [prepared[i] for i in idxs]
        arrays = await client.run(name, _decrypt_job(chosen), words=(len(idxs) + 63) // 64,
                                  mode="reveal", timeout=timeout)
        for i, r in zip(idxs, _decrypt_results(arrays, chosen), strict=True):
            out[i] = r

    await _run_groups(groups, run_group)
    return out


async def pair_many(client: AsyncMpcClient,
                    dec_items: Sequence[tuple[KeySpec, int, int, bytes]],
                    enc_items: Sequence[tuple[KeySpec, int, int, bytes, bytes | None]], *,
                    timeout: float | None = None) -> tuple[list[bytes | None], list[bytes]]:
    """:func:`decrypt_many` and :func:`encrypt_many` as ONE job (``krb-pair``): the
    decryptions must share one size class and the encryptions one job (the key service's
    lanes), at most MAX_INSTANCES_PER_JOB of each. Instance i runs decryption i and
    encryption i; the shorter side is padded with copies of its first item, whose outputs
    (the same as that item's) are dropped, so a pair job reveals nothing the two separate
    jobs would not.
    """
    prepared_dec = _prepare_decryptions(dec_items)
    prepared_enc = _prepare_encryptions(enc_items)
    dec_out: list[bytes | None] = [None] * len(dec_items)
    if not prepared_dec or not prepared_enc:  # nothing to pair
        enc_out = await encrypt_many(client, enc_items, timeout=timeout) if enc_items else []
        if prepared_dec:
            dec_out = await decrypt_many(client, dec_items, timeout=timeout)
        return dec_out, enc_out
    dec_idxs = list(prepared_dec)
    decs = [prepared_dec[i] for i in dec_idxs]
    dec_names = {registry.krb_decrypt_name(etype, len(ct)) for _, ct, etype in decs}
    enc_groups = {(etype, encrypt_family(len(data))) for _, etype, data in prepared_enc}
    n = max(len(decs), len(prepared_enc))
    if len(dec_names) != 1 or len(enc_groups) != 1 or n > MAX_INSTANCES_PER_JOB:
        raise ValueError("a pair job takes one decryption class and one encryption job")
    decs += decs[:1] * (n - len(decs))
    encs = prepared_enc + prepared_enc[:1] * (n - len(prepared_enc))
    enc_name, enc_inputs = _encrypt_job(encs)
    dec_inputs = _decrypt_job(decs)
    name = registry.krb_pair_name(dec_names.pop(), enc_name)
    # krb-pair input order: both materials first, then the public inputs of each side.
    inputs = [*dec_inputs[:3], *enc_inputs[:3], *dec_inputs[3:], *enc_inputs[3:]]
    arrays = await client.run(name, inputs, words=(n + 63) // 64, mode="reveal",
                              timeout=timeout)
    for i, r in zip(dec_idxs, _decrypt_results(arrays[:2], decs)[: len(dec_idxs)],
                    strict=True):
        dec_out[i] = r
    enc_out = _encrypt_results(arrays[2:], encs)[: len(prepared_enc)]
    return dec_out, enc_out


async def warm_up(client: AsyncMpcClient, sizes: Sequence[tuple[str, int, int]], *,
                  timeout: float | None = None) -> list[str]:
    """Have the nodes build the circuits for ``(op, etype, n_bytes)`` now (``op`` "enc":
    n_bytes = len(conf|plaintext); "dec": n_bytes = len(ciphertext)); returns the circuit
    names. A node builds each circuit once and keeps it on disk, so this matters on a fresh
    cluster: the first job of a new size class otherwise waits for the build (seconds)."""
    names = []
    for op, etype, n in sizes:
        name = (registry.krb_encrypt_name(etype, n) if op == "enc"
                else registry.krb_decrypt_name(etype, n))
        if name not in names:
            names.append(name)
    for k in range(0, len(names), 64):
        await client.build_circuits(names[k:k + 64], timeout=timeout)
    return names


async def lookup_record(client: AsyncMpcClient, name: str) -> dict | None:
    """The committed public record of ``name`` (with its store ``version``), or None.

    Asks all three nodes (LOOKUP frame, binary job protocol). If they disagree on the
    version a change is being committed right now: :class:`MpcUnavailable` (transient; the
    KDC answers KDC_ERR_SVC_UNAVAILABLE and the client retries).
    """
    per_node = await client.lookup_all([name])
    records = [r.get(name) for r in per_node]
    versions = {None if r is None else r.get("version") for r in records}
    if len(versions) != 1:
        raise MpcUnavailable(f"nodes disagree on the record of {name!r} (change in progress)")
    return records[0]


async def lookup(client: AsyncMpcClient, name: str):
    """:func:`lookup_record` as a ``kdc.keyservice.base.PrincipalEntry`` (None if unknown)."""
    from mpc.store import entry_from_record

    record = await lookup_record(client, name)
    return None if record is None else entry_from_record(record)


# -- helpers ------------------------------------------------------------------------------------

def _prepare_encryptions(items) -> list[tuple[tuple[str, str, str], int, bytes]]:
    """(material handles, etype, conf|plaintext) per item; ValueError for a bad item."""
    prepared = []
    for key, usage, etype, plaintext, confounder in items:
        if confounder is None:
            confounder = os.urandom(CONFOUNDER_BYTES)
        if len(confounder) != CONFOUNDER_BYTES:
            raise ValueError("confounder must be 16 octets")
        data = bytes(confounder) + bytes(plaintext)
        if len(data) > MAX_MESSAGE_BYTES:
            raise ValueError(f"message longer than {MAX_MESSAGE_BYTES - CONFOUNDER_BYTES} bytes")
        prepared.append((material_handles(key, etype, usage), etype, data))
    return prepared


def _encrypt_job(chosen: list) -> tuple[str, list]:
    """(class circuit name, inputs) for one job of prepared encryptions (one etype and
    family): the class of the longest message."""
    datas = [d for _, _, d in chosen]
    m, h = encrypt_class(max(size_class(len(d))[1] for d in datas))
    publics = [list(col) for col in zip(*(_encrypt_public_inputs(d, m, h) for d in datas),
                                        strict=True)]
    name = registry.krb_encrypt_class_name(chosen[0][1], h)
    return name, [*_handle_inputs([t for t, _, _ in chosen]), *publics]


def _encrypt_results(arrays: Sequence, chosen: list) -> list[bytes]:
    chain_arr, tag_arr = arrays
    chains = jobs.unpack_bytes_instances(chain_arr, len(chosen))
    tags = jobs.unpack_bytes_instances(tag_arr, len(chosen))
    return [_cts_from_chain(chain, len(d)) + tag
            for (_, _, d), chain, tag in zip(chosen, chains, tags, strict=True)]


def _prepare_decryptions(items) -> dict[int, tuple[tuple[str, str, str], bytes, int]]:
    """{item index: (material handles, ciphertext, etype)}, without the ciphertexts that
    cannot be ours (too short or too long: integrity failures without any MPC work)."""
    prepared = {}
    for idx, (key, usage, etype, ciphertext) in enumerate(items):
        ciphertext = bytes(ciphertext)
        handles = material_handles(key, etype, usage)
        if CONFOUNDER_BYTES <= len(ciphertext) - MAC_BYTES <= MAX_MESSAGE_BYTES:
            prepared[idx] = (handles, ciphertext, etype)
    return prepared


def _decrypt_job(chosen: list) -> list:
    """Inputs for one job of prepared decryptions of one size class."""
    m, h = size_class(len(chosen[0][1]) - MAC_BYTES)
    per_item = [_decrypt_public_inputs(ct, m, h) for _, ct, _ in chosen]
    publics = [list(col) for col in zip(*per_item, strict=True)]
    return [*_handle_inputs([t for t, _, _ in chosen]), *publics]


def _decrypt_results(arrays: Sequence, chosen: list) -> list[bytes | None]:
    ok_arr, plain_arr = arrays
    oks = jobs.unbitslice(ok_arr, len(chosen))[:, 0]
    plains = jobs.unpack_bytes_instances(plain_arr, len(chosen))
    return [plain[CONFOUNDER_BYTES:len(ct) - MAC_BYTES] if ok else None
            for (_, ct, _), ok, plain in zip(chosen, oks, plains, strict=True)]


def _handle_inputs(triples: list[tuple[str, str, str]]) -> list[Handles]:
    """Inputs 0, 1, 2 of the krb circuits: one stored secret per instance."""
    return [Handles(tuple(t[k] for t in triples)) for k in range(3)]


def _cts_from_chain(chain: bytes, n: int) -> bytes:
    """RFC 3962 §5 CBC-CTS output from the plain CBC chain C_1..C_m of an n-byte input:
    swap the last two blocks and cut the new last one to the last input block's length."""
    m = (n + 15) // 16
    if m == 1:
        return chain[:16]
    last = n - 16 * (m - 1)
    c_prev, c_last = chain[16 * (m - 2): 16 * (m - 1)], chain[16 * (m - 1): 16 * m]
    return chain[: 16 * (m - 2)] + c_last + c_prev[:last]


def _encrypt_public_inputs(data: bytes, m: int, h: int) -> list[bytes]:
    """Public inputs 3, 4, 5 of ``krb-enc/<etype>/<m>x<h>`` for one conf|plaintext (see
    ``mpc.circuits.kerberos.build_encrypt_class_circuit``)."""
    mac_in = data + sha1_padding(len(data), BLOCK_BYTES)
    blocks = len(mac_in) // BLOCK_BYTES
    select = (1 << (8 * ((h + 7) // 8) - blocks)).to_bytes((h + 7) // 8, "big")
    return [data + bytes(16 * m - len(data)), mac_in + bytes(BLOCK_BYTES * h - len(mac_in)),
            select]


def _decrypt_public_inputs(ciphertext: bytes, m: int, h: int) -> list[bytes]:
    """Public inputs 3.. of ``krb-dec/<etype>/<m>x<h>`` for one ciphertext (see
    ``mpc.circuits.kerberos.build_decrypt_class_circuit``)."""
    body, tag = ciphertext[:-MAC_BYTES], ciphertext[-MAC_BYTES:]
    n = len(body)
    pad_vec = bytes(n) + sha1_padding(n, BLOCK_BYTES)
    pad_vec += bytes(BLOCK_BYTES * h - len(pad_vec))
    if m == 1:
        return [body, pad_vec, tag]
    last = n - 16 * (m - 1)
    tail = body[16 * (m - 1):]
    return [body[: 16 * (m - 1)], tail + bytes(16 - last), b"\xff" * last + bytes(16 - last),
            pad_vec, tag]


async def _run_groups(groups: dict, run_group) -> None:
    """One job per (group, chunk of MAX_INSTANCES_PER_JOB items), all at once."""
    tasks = []
    for group, idxs in groups.items():
        for k in range(0, len(idxs), MAX_INSTANCES_PER_JOB):
            tasks.append(run_group(group, idxs[k:k + MAX_INSTANCES_PER_JOB]))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r

