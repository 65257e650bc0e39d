"""Reading and writing MIT's binary file formats (keytab, ccache): a bounds-checked
big-endian reader and a locked in-place rewrite.

Every read past the end raises the format's own error class with a "truncated" message, so a
damaged file gives a clear error and never an IndexError or struct.error.
"""

from __future__ import annotations

import fcntl
import os
import struct

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class BinaryReader:
    def __init__(self, data: bytes, where: str, error: type[Exception], what: str) -> None:
        self.data = data
        self.pos = 0
        self.where = where
        self.error = error
        self.what = what  # e.g. "keytab entry", "credentials cache"

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"{self.where}: truncated {self.what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return _U16.unpack(self.take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


def rewrite_private_file(path: str, data: bytes) -> None:
    """Replace ``path``'s content with ``data``, mode 0600, under a POSIX write lock.

    Written in place (as MIT's cc_file.c and kt_file.c lock with fcntl), never through a
    temporary copy: no stray file with keys is left behind. Raises OSError from open().
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        os.fchmod(f.fileno(), 0o600)
        f.truncate(0)
        f.write(data)
        f.flush()
