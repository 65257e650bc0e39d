"""Which DER codec runs: ``der.py`` as compiled by mypyc, when that build is of this der.py.

At ``pip install`` time ``setup.py`` copies der.py to ``_der_native.py`` with der.py's SHA-256
appended and compiles the copy with mypyc: the same code, about twice as fast
(``bench/bench_codec.py``). A compiled copy of another version of der.py (edited since the
install) is ignored with a warning, and der.py itself runs, as it does when nothing was
compiled or ``MPCKDC_PURE_DER=1`` is set.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from types import ModuleType

from . import der


def _compiled() -> ModuleType | None:
    if os.environ.get("MPCKDC_PURE_DER") == "1":
        return None
    try:
        from . import _der_native as native
    except ImportError:
        return None
    with open(der.__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if getattr(native, "SOURCE_DIGEST", None) != digest or native.__file__.endswith(".py"):
        warnings.warn("the compiled DER codec is not built from this der.py (reinstall to "
                      "rebuild it): using der.py", RuntimeWarning, stacklevel=2)
        return None
    return native


compiled = _compiled()
active: ModuleType = compiled or der
