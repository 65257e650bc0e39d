"""Build hook: the DER codec compiled with mypyc (``kdc/messages/codec.py``).

Everything else is in pyproject.toml. Without mypyc or a C compiler, or with
``MPCKDC_NO_NATIVE=1``, nothing is compiled and the pure Python codec runs
(``tests/test_messages.py`` then fails ``test_install_compiled_the_codec``, so CI notices).
"""

import hashlib
import os
from pathlib import Path

from setuptools import setup

SOURCE = Path("kdc/messages/der.py")
COPY = SOURCE.with_name("_der_native.py")


def native_extensions() -> list:
    if os.environ.get("MPCKDC_NO_NATIVE") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    data = SOURCE.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    COPY.write_bytes(b"# Generated from der.py by setup.py; not to be edited.\n" + data
                     + f"\nSOURCE_DIGEST = {digest!r}\n".encode())
    try:
        extensions = mypycify([str(COPY)], opt_level="3")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the pure codec is always there
        print(f"setup.py: DER codec not compiled ({type(exc).__name__}: {exc})")
        return []
    finally:
        COPY.unlink(missing_ok=True)  # the wheel carries the extension, not the copy
    for ext in extensions:
        ext.optional = True  # a failed C build skips the extension instead of the install
    return extensions


setup(ext_modules=native_extensions())
