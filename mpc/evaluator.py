"""Sans-IO evaluation of one batch by one party (CONTRACTS §5).

Round protocol of party i (Araki et al. 2016 §2.2): for each AND layer it computes
z_i = x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i ^ alpha_i for every reshared wire (an AND, or an XOR
of several products and earlier wires, :mod:`mpc.fusion`), keeps z_i as its first share of the
wire and SENDS z_i TO PARTY i-1; it RECEIVES z_{i+1} FROM PARTY i+1 as its second share. Round r (0-based) uses the PRF label (batch_id, r, PURPOSE_ZERO), so the three parties
draw matching zero-shares without talking.

Message of one round, party i -> party i-1: ``layer_size * words`` uint64 words, row j = z_i of
the j-th reshared wire of the layer (its AND and SEND rows in ``circuit.and_layers[round]``
order, :mod:`mpc.fusion`), 64 instances per word;
as bytes, little-endian (``send.tobytes()``). The framing and the transport belong to the caller
(mpc nodes); nothing here touches a socket.

Many PartyEvaluations may be in flight in one process: all state is per object.
"""

from __future__ import annotations

import threading

import numpy as np

from mpc.circuit import Circuit
from mpc.kernels import empty_layer, party_round
from mpc.prf import PURPOSE_ZERO, PartyRandomness, label_nonce

POOL_BYTES = 256 << 20  # wire arrays kept for reuse, per process
POOL_PER_SHAPE = 8
# Zero-share streams of small AND layers are drawn several layers at a time (two AES calls per
# window instead of two per layer: the calls' Python overhead, not AES, was a third of a
# small round's CPU). Per key and evaluation; layers above WINDOW_LAYER_MAX are drawn alone.
WINDOW_BYTES = 32 << 10
WINDOW_LAYER_MAX = 8 << 10


class _WirePool:
    """Recycles the wire arrays of finished evaluations (same shape, same process).

    A fresh ``np.zeros`` of a batch's wires (8 MiB at 256 words for AES) costs a memset plus a
    page fault per 4 KiB and an munmap when freed: about 5 % of a node's CPU under load
    (perf). The recycled arrays hold this party's own old shares; they are never sent
    anywhere, and every register is written before it is read (inputs by ``set_input``,
    every other register by its gate, mpc.circuit's register allocation), so no zeroing is
    needed.
    """

    def __init__(self) -> None:
        self._free: dict[tuple[int, int], list[np.ndarray]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, n_wires: int, words: int) -> np.ndarray:
        with self._lock:
            free = self._free.get((n_wires, words))
            if free:
                arr = free.pop()
                self._bytes -= arr.nbytes
                return arr
        return np.empty((n_wires, 2, words), dtype=np.uint64)

    def give(self, arr: np.ndarray) -> None:
        key = (arr.shape[0], arr.shape[2])
        with self._lock:
            free = self._free.setdefault(key, [])
            if len(free) < POOL_PER_SHAPE and self._bytes + arr.nbytes <= POOL_BYTES:
                free.append(arr)
                self._bytes += arr.nbytes


_POOL = _WirePool()


class EvaluationStateError(RuntimeError):
    """A method was called out of order (e.g. receive() before start(), or after the end)."""


class PartyEvaluation:
    """One party's evaluation of ``circuit`` on ``64 * words`` instances.

    Usage: ``set_input`` for every input, then ``send = start()``; while ``send`` is not
    None: deliver ``send`` to party i-1, get z from party i+1, ``send = receive(z)``. Then
    ``output(k)``. Each returned send buffer is a fresh array owned by the caller (unless
    ``reuse_send_buffers=True``: then it stays valid until the next-but-one call).

    ``batch_id`` selects the PRF labels: it must be the same at the three parties and must
    never repeat under the same PRF keys (see :class:`mpc.prf.PartyRandomness`);
    ``claim_batch_id=True`` makes the constructor refuse a repeat seen by ``rand``.
    """

    def __init__(
        self,
        circuit: Circuit,
        party: int,
        rand: PartyRandomness,
        batch_id: int,
        words: int,
        *,
        reuse_send_buffers: bool = False,
        claim_batch_id: bool = False,
    ) -> None:
        if party not in (0, 1, 2):
            raise ValueError("party must be 0, 1 or 2")
        if words < 1:
            raise ValueError("words must be >= 1")
        label_nonce(batch_id, 0, PURPOSE_ZERO)  # range check (uint64) before any work
        if claim_batch_id:
            rand.claim_batch(batch_id)  # raises BatchIdReused on a repeat
        self.circuit = circuit
        self.party = party
        self.batch_id = batch_id
        self.words = words
        self._rand = rand
        self._wires = _POOL.take(circuit.n_wires, words)
        self._flat = self._wires.reshape(circuit.n_wires, 2 * words)
        # Public constants are shared as (c, 0, 0): x_0 sits in slot 0 of party 0 and slot 1 of
        # party 2; NOT flips x_0.
        ones = np.uint64(0xFFFFFFFFFFFFFFFF)
        self._flip0 = ones if party == 0 else np.uint64(0)
        self._flip1 = ones if party == 2 else np.uint64(0)
        # Per-layer sizes for the round path: a list to index, an array for window sums.
        self._sizes = circuit.layer_sizes
        self._size_array = np.asarray(self._sizes, dtype=np.int64)
        self._depth = len(self._sizes)
        widest = max(self._sizes, default=0)
        # Layers too big for the PRF window get their streams drawn one layer at a time.
        big = widest if widest * words * 8 > WINDOW_LAYER_MAX else 0
        self._alpha_own = np.empty((big, words), dtype=np.uint64)
        self._alpha_next = np.empty((big, words), dtype=np.uint64)
        self._win_own: np.ndarray | None = None
        self._win_next: np.ndarray | None = None
        self._win_first = 0  # the window holds the streams of layers [first, end)
        self._win_end = 0
        self._win_off: list[int] = []  # offset (uint64 words) of each layer's streams
        self._reuse = reuse_send_buffers
        self._send_ring = (
            [np.empty((widest, words), dtype=np.uint64) for _ in range(2)]
            if reuse_send_buffers
            else []
        )
        self._inputs_set = [False] * len(circuit.input_wires)
        self._empty_layer = empty_layer()
        self._empty_words = np.zeros((0, words), dtype=np.uint64)
        self.round = 0  # index of the AND layer whose z is outstanding (= PRF label round)
        self._alpha_ready = -1  # PRF label round whose streams are already in _alpha_*
        self._started = False
        self._finished = False

    def __del__(self) -> None:
        # Outputs are copies (output() indexes with an id array), so nothing else views it.
        wires = getattr(self, "_wires", None)
        if wires is not None and _POOL is not None:
            _POOL.give(wires)

    def __repr__(self) -> str:
        return (
            f"PartyEvaluation(party={self.party}, batch_id={self.batch_id}, words={self.words}, "
            f"round={self.round}/{self.circuit.and_depth}, finished={self._finished})"
        )

    # -- inputs --------------------------------------------------------------------------------
    def set_input(self, index: int, shares: np.ndarray) -> None:
        """This party's (x_i, x_{i+1}) of input ``index``, shape (n_bits, 2, words) uint64."""
        if self._started:
            raise EvaluationStateError("inputs must be set before start()")
        ids = self.circuit.input_wires[index]
        s = np.asarray(shares)
        if s.shape != (len(ids), 2, self.words) or s.dtype != np.uint64:
            raise ValueError(
                f"input {index} shares must be uint64 of shape {(len(ids), 2, self.words)}"
            )
        self._wires[ids] = s
        self._inputs_set[index] = True

    # -- rounds --------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def rounds(self) -> int:
        """Total number of communication rounds (the circuit's AND depth)."""
        return self.circuit.and_depth

    def expected_receive_shape(self) -> tuple[int, int]:
        """Shape of the z block the next receive() expects (current layer size, words)."""
        if not self._started or self._finished:
            raise EvaluationStateError("no round is outstanding")
        return (self._sizes[self.round], self.words)

    def start(self) -> np.ndarray | None:
        """Run segment 0 and the first AND layer; return z_i for party i-1 (or None if the
        circuit has no AND gate, in which case the evaluation is already finished)."""
        if self._started:
            raise EvaluationStateError("start() called twice")
        missing = [i for i, ok in enumerate(self._inputs_set) if not ok]
        if missing:
            raise EvaluationStateError(f"inputs not set: {missing}")
        self._started = True
        return self._step(self._empty_layer, self._empty_words, 0)

    def receive(
        self, z_from_next: np.ndarray | bytes | bytearray | memoryview
    ) -> np.ndarray | None:
        """Install z_{i+1} from party i+1 for the outstanding layer, run to the next AND layer.

        Accepts an array of shape (layer_size, words) or the equivalent little-endian bytes.
        Returns the next send buffer, or None when the circuit is finished."""
        if not self._started or self._finished:
            raise EvaluationStateError("receive() without an outstanding round")
        rnd = self.round
        layer = self.circuit.and_layers[rnd]
        shape = (self._sizes[rnd], self.words)
        if isinstance(z_from_next, bytes | bytearray | memoryview):
            raw = np.frombuffer(z_from_next, dtype="<u8")
            if raw.size != shape[0] * shape[1]:
                raise ValueError(f"expected {shape[0] * shape[1] * 8} bytes of z, got {raw.nbytes}")
            z = raw.astype(np.uint64, copy=False).reshape(shape)
        else:
            z = z_from_next if type(z_from_next) is np.ndarray else np.asarray(z_from_next)
            if z.shape != shape and z.ndim == 1 and z.size == shape[0] * shape[1]:
                z = z.reshape(shape)  # a frame's section arrives flat
            if z.shape != shape or z.dtype != np.uint64:
                raise ValueError(f"expected uint64 z of shape {shape}, got {z.dtype} {z.shape}")
        if not z.flags.c_contiguous:
            z = np.ascontiguousarray(z)
        self.round = rnd + 1
        return self._step(layer, z, rnd + 1)

    def prepare_next(self, max_bytes: int = 1 << 18) -> bool:
        """Draw the zero-share streams of the next AND layer now, while this party waits for
        the outstanding z (the label (batch_id, round + 1) is fixed already), so the next
        ``receive`` does only the circuit work: the PRF leaves a round's critical path.
        Skipped (False) for layers whose streams exceed ``max_bytes`` each, where throughput,
        not latency, matters and the streams are better drawn right before use (cache)."""
        if not self._started or self._finished:
            return False
        nxt = self.round + 1
        if nxt >= self._depth:
            return False
        if self._win_first <= nxt < self._win_end or self._alpha_ready == nxt:
            return True
        n = self._sizes[nxt]
        if n * self.words * 8 <= WINDOW_LAYER_MAX:
            self._refill_window(nxt)
            return True
        if n * self.words * 8 > max_bytes:
            return False
        self._rand.zero_share_streams(
            self.batch_id, nxt, self._alpha_own[:n], self._alpha_next[:n]
        )
        self._alpha_ready = nxt
        return True

    def _refill_window(self, first: int) -> None:
        """Draw the zero-share streams of layers first, first+1, ... that fit the window."""
        words = self.words
        if self._win_own is None:
            self._win_own = np.empty(WINDOW_BYTES // 8 + 2, dtype=np.uint64)
            self._win_next = np.empty(WINDOW_BYTES // 8 + 2, dtype=np.uint64)
        sizes = self._size_array[first:first + WINDOW_BYTES // 8]
        blocks = (sizes * words + 1) >> 1  # 16-byte AES blocks per layer (rounded up)
        ends = np.cumsum(blocks)
        k = max(int(np.searchsorted(ends, WINDOW_BYTES // 16, side="right")), 1)
        blocks = blocks[:k]
        self._rand.zero_share_window(self.batch_id, first, blocks, self._win_own, self._win_next)
        self._win_off = (2 * (ends[:k] - blocks)).tolist()
        self._win_first = first
        self._win_end = first + k

    def _alpha(self, index: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """This party's two zero-share streams for AND layer ``index`` (n gates)."""
        words = self.words
        if not self._win_first <= index < self._win_end:
            if n * words * 8 > WINDOW_LAYER_MAX:
                alpha_own = self._alpha_own[:n]
                alpha_next = self._alpha_next[:n]
                if self._alpha_ready != index:
                    self._rand.zero_share_streams(self.batch_id, index, alpha_own, alpha_next)
                self._alpha_ready = -1
                return alpha_own, alpha_next
            self._refill_window(index)
        off = self._win_off[index - self._win_first]
        end = off + n * words
        return (self._win_own[off:end].reshape(n, words),
                self._win_next[off:end].reshape(n, words))

    def _step(
        self, prev_layer: np.ndarray, recv: np.ndarray, segment_index: int
    ) -> np.ndarray | None:
        c = self.circuit
        segment = c.segments[segment_index]
        depth = self._depth
        if segment_index < depth:
            layer = c.and_layers[segment_index]
            n = self._sizes[segment_index]
            alpha_own, alpha_next = self._alpha(segment_index, n)
            if self._reuse:
                send = self._send_ring[segment_index & 1][:n]
            else:
                send = np.empty((n, self.words), dtype=np.uint64)
        else:
            layer = self._empty_layer
            alpha_own = alpha_next = send = self._empty_words
        party_round(
            self._flat, prev_layer, recv, segment, layer,
            alpha_own, alpha_next, send, self._flip0, self._flip1,
        )  # fmt: skip
        if segment_index >= depth:
            self._finished = True
            return None
        return send

    # -- outputs -------------------------------------------------------------------------------
    def output(self, index: int) -> np.ndarray:
        """This party's (x_i, x_{i+1}) of output ``index``, shape (n_bits, 2, words)."""
        if not self._finished:
            raise EvaluationStateError("outputs are available after the last round")
        return self._wires[self.circuit.output_wires[index]]

    def outputs(self) -> list[np.ndarray]:
        return [self.output(i) for i in range(len(self.circuit.output_wires))]
