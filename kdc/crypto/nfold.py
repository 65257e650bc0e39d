"""RFC 3961 §5.1 n-fold: stretch or shrink a constant to the cipher's block size."""

from __future__ import annotations

from math import lcm


def nfold(data: bytes, nbytes: int) -> bytes:
    """n-fold ``data`` to ``nbytes`` octets (RFC 3961 §5.1).

    The input is repeated lcm(len, n) / len times, each copy rotated right by 13 more bits than
    the previous one; the result is cut into n-octet blocks that are summed with
    ones'-complement (end-around carry) addition.
    """
    k = len(data)
    if k == 0 or nbytes <= 0:
        raise ValueError("n-fold needs a non-empty input and a positive output size")
    bits = 8 * k
    mask = (1 << bits) - 1
    x = int.from_bytes(data, "big")
    total_len = lcm(k, nbytes)
    copies = []
    for i in range(total_len // k):
        r = (13 * i) % bits  # RFC 3961 §5.1: copy i is rotated right by 13*i bits
        copies.append((((x >> r) | (x << (bits - r))) & mask).to_bytes(k, "big"))
    buf = b"".join(copies)
    total = 0
    for j in range(0, total_len, nbytes):
        total += int.from_bytes(buf[j : j + nbytes], "big")
    out_bits = 8 * nbytes
    out_mask = (1 << out_bits) - 1
    while total >> out_bits:  # ones'-complement addition: fold the carries back in
        total = (total & out_mask) + (total >> out_bits)
    return total.to_bytes(nbytes, "big")
