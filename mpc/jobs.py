"""The job wire format between job clients (front-end, admin) and the nodes.

Every client frame is a :mod:`mpc.framing` header (``batch_id`` = job id) and a body::

    u32 meta_len | meta (UTF-8 JSON object) | u32 n_blobs | n_blobs x u64 blob_len | blobs

Blobs are raw bytes: shares are packed bits, bit-sliced arrays are little-endian uint64.
JSON metadata never contains share bytes (it may be logged on error; blobs never are).

Frames (kind: meta fields; blobs):

* ``JOB``: ``circuit`` (registry name), ``words`` (64*words instances), ``inputs`` (one per
  circuit input: ``{"handle": h}`` the same stored secret for every instance,
  ``{"handles": [h0, h1, ...]}`` one stored secret per instance, or ``{"public": k}`` blob k is
  the public value bit-sliced, ``(n_bits, words)`` uint64), ``mode`` (``reveal`` to the
  client, ``reveal-all`` to every node and the client, ``keep`` as shares), ``out_handles``
  (keep: per output a list of handles, one per instance). Job id = batch id: it labels
  every PRF stream of the batch, so it must never repeat: ``unix_ms << 21 | counter``;
  nodes refuse ids whose time part is not within 60 s of now (or predates the node's start)
  and ids they saw in the last 120 s (ERROR ``BAD_JOB_ID`` / ``DUPLICATE``).
* ``RESULT``: ``party``, ``mode``; reveal: per output the node's two shares,
  ``(n_bits, 2, words)`` uint64 (share i, share i+1); reveal-all: per output the value,
  ``(n_bits, words)``; keep: ``stored`` handle count, no blobs.
* ``ERROR``: ``code`` (BUSY, PEER_DOWN, TIMEOUT, UNKNOWN_HANDLE, BAD_JOB, ...), ``message``.
* ``STORE``: ``items`` = ``[{"handle": h, "n_bits": n}]``, ``party`` (the receiving node,
  checked); per item 2 blobs: the receiver's shares x_i and x_{i+1}, packed bits in the
  circuit bit order (``np.packbits``, MSB first). A node never receives x_{i+2}.
  Reply ``STORED`` with ``count``.
* ``DELETE``: ``handles``; reply ``STORED``. ``ABORT``: no meta fields, no reply.
* ``PING``: reply ``PONG`` with ``party`` and ``links_up``.
* ``DEBUG`` (only when the node runs with ``debug = true``): reply ``DIGESTS`` with, per
  handle, the SHA-256 of each share the node holds, keyed by share index.
* ``ACCEPTED`` (node -> client, before the final reply of a JOB): ``party``, ``building``:
  the node must build (or load) the circuit first; the client then allows its longer build
  deadline instead of failing the job at the short one.
* ``RANDOM``: ``items`` = ``[{"handle": h, "n_bits": n}]``; every node stores its two
  shares of a fresh random secret per item, made from its PRF keys with the label (job id,
  item index) and no message at all (MPC key generation; the id must be fresh as for a JOB).
  Reply ``STORED`` with ``count``.
* ``LOOKUP``: ``names`` (principal names); reply ``RECORDS`` with ``party`` and ``records``
  = ``{name: committed public record with "version", or null}``.
* ``BUILD``: ``circuits`` (registry names, at most 64): build (or load from the node's disk
  cache) each circuit now, so that a first job does not wait for it; reply ``STORED`` with
  ``count`` once all are in memory. The frontend role may name krb-enc/krb-dec/krb-pair
  circuits only.

Roles: a ``client-frontend`` certificate may send only JOB (reveal mode,
krb-enc/krb-dec/krb-pair, stored key material + public inputs), LOOKUP, BUILD (those
circuits), PING and ABORT; anything else is answered ``ERROR`` ``FORBIDDEN``. A share-store failure is ``ERROR`` ``STORE_FAILED``.
"""

from __future__ import annotations

import json
import struct

import numpy as np

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

MODES = ("reveal", "reveal-all", "keep")

# Frame kinds of this job protocol beyond mpc.framing's KIND_* (same header, same body format).
KIND_LOOKUP = 40
KIND_RECORDS = 41
KIND_RANDOM = 42
KIND_ACCEPTED = 43
KIND_BUILD = 44


class BadMessage(ValueError):
    """A client frame body that does not parse."""


def encode_body(meta: dict, blobs: list | tuple = ()) -> list:
    """Body buffers for ``meta`` and ``blobs`` (bytes, memoryviews or numpy arrays)."""
    m = json.dumps(meta, separators=(",", ":")).encode()
    views = [memoryview(np.ascontiguousarray(b).reshape(-1).view(np.uint8))
             if isinstance(b, np.ndarray) else memoryview(b).cast("B") for b in blobs]
    head = bytearray(U32.pack(len(m)) + m + U32.pack(len(views)))
    for v in views:
        head += U64.pack(v.nbytes)
    return [bytes(head), *views]


def body_length(buffers: list) -> int:
    return sum(b.nbytes if isinstance(b, memoryview) else len(b) for b in buffers)


def decode_body(data: bytes | bytearray | memoryview) -> tuple[dict, list[memoryview]]:
    """Inverse of :func:`encode_body`; raises BadMessage on anything malformed."""
    mv = memoryview(data)
    try:
        (mlen,) = U32.unpack_from(mv, 0)
        meta = json.loads(bytes(mv[4:4 + mlen]))
        pos = 4 + mlen
        (n,) = U32.unpack_from(mv, pos)
        pos += 4
        if n > 100_000:
            raise BadMessage("too many blobs")
        lens = [U64.unpack_from(mv, pos + 8 * k)[0] for k in range(n)]
        pos += 8 * n
        blobs = []
        for ln in lens:
            if pos + ln > len(mv):
                raise BadMessage("truncated blob")
            blobs.append(mv[pos:pos + ln])
            pos += ln
        if pos != len(mv):
            raise BadMessage("trailing bytes")
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadMessage("malformed body") from e
    if not isinstance(meta, dict):
        raise BadMessage("meta must be an object")
    return meta, blobs


# -- bit-slicing helpers (instances <-> words) ------------------------------------------------

def bitslice(bits: np.ndarray, words: int) -> np.ndarray:
    """``(n_instances, n_bits)`` 0/1 uint8 -> ``(n_bits, words)`` uint64.

    Instance t lands in bit t % 64 of word t // 64 (the evaluator's convention).
    """
    n, nbits = bits.shape
    if n > 64 * words:
        raise ValueError("more instances than 64*words")
    padded = np.zeros((64 * words, nbits), dtype=np.uint8)
    padded[:n] = bits
    packed = np.packbits(padded.T, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").reshape(nbits, words).astype(np.uint64,
                                                                                copy=False)


def unbitslice(arr: np.ndarray, n: int) -> np.ndarray:
    """``(n_bits, words)`` uint64 -> ``(n, n_bits)`` 0/1 uint8 (first n instances)."""
    nbits, words = arr.shape
    b = np.ascontiguousarray(arr.astype("<u8", copy=False)).view(np.uint8).reshape(nbits, 8 * words)
    bits = np.unpackbits(b, axis=1, bitorder="little")[:, :n]
    return np.ascontiguousarray(bits.T)


def bytes_to_bits(data: bytes) -> np.ndarray:
    """Byte string -> bit vector in the circuit order (wire 8j+k = bit 7-k of byte j)."""
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def broadcast_bits(bits: np.ndarray, words: int) -> np.ndarray:
    """One bit vector for every instance: ``(n_bits,)`` -> ``(n_bits, words)`` of 0 / ~0."""
    col = np.where(np.asarray(bits, dtype=np.uint8) != 0, np.uint64(0xFFFFFFFFFFFFFFFF),
                   np.uint64(0))
    return np.ascontiguousarray(np.broadcast_to(col[:, None], (len(col), words)))


def pack_bytes_instances(values: list[bytes], words: int) -> np.ndarray:
    """Equal-length byte strings, one per instance -> bit-sliced ``(8*len, words)``."""
    if not values:
        raise ValueError("no values")
    ln = len(values[0])
    if any(len(v) != ln for v in values):
        raise ValueError("all values must have the same length")
    raw = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), ln)
    return bitslice(np.unpackbits(raw, axis=1), words)


def unpack_bytes_instances(arr: np.ndarray, n: int) -> list[bytes]:
    """Inverse of :func:`pack_bytes_instances` for the first n instances."""
    bits = unbitslice(arr, n)
    packed = np.packbits(bits, axis=1)
    return [row.tobytes() for row in packed]


def public_shares(value: np.ndarray, party: int) -> np.ndarray:
    """Party ``party``'s replicated shares of a public value: x_0 = v, x_1 = x_2 = 0.

    ``value`` is ``(n_bits, words)``; returns ``(n_bits, 2, words)`` = (x_i, x_{i+1}).
    """
    out = np.zeros((value.shape[0], 2, value.shape[1]), dtype=np.uint64)
    if party == 0:
        out[:, 0, :] = value
    elif party == 2:
        out[:, 1, :] = value
    return out
