"""The one loader for every published test vector and MIT capture in ``../shared``.

``load("aes_cts")`` returns the vectors of ``vectors/aes_cts.json`` with every ``*_hex`` field
decoded to bytes under the name without ``_hex`` (``key_hex`` -> ``key``); the other fields are
kept as they are. ``capture("alice-as-req")`` returns the bytes of one MIT 1.20 capture.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``../shared`` beside the checkout, or ``$MPCKDC_SHARED``."""
    return Path(os.environ.get("MPCKDC_SHARED", PROJECT_ROOT.parent / "shared"))


def captures_dir() -> Path:
    return shared_dir() / "captures" / "mit-krb5-1.20"


def _decode(entry: dict) -> dict:
    out = {}
    for name, value in entry.items():
        if name.endswith("_hex") and isinstance(value, str):
            out[name[:-4]] = bytes.fromhex(value)
        else:
            out[name] = value
    return out


@cache
def _load(name: str) -> tuple[dict, ...]:
    with open(shared_dir() / "vectors" / f"{name}.json") as f:
        data = json.load(f)
    return tuple(_decode(v) for v in data["vectors"])


def load(name: str, **match) -> list[dict]:
    """Vectors of ``vectors/<name>.json``, filtered by equality on ``match`` fields."""
    return [v for v in _load(name) if all(v.get(k) == want for k, want in match.items())]


def raw(name: str) -> dict:
    """The whole JSON document (for files laid out differently, such as key_usage.json)."""
    with open(shared_dir() / "vectors" / f"{name}.json") as f:
        return json.load(f)


def capture(name: str) -> bytes:
    """One captured message, by file name without ``.bin``."""
    return (captures_dir() / f"{name}.bin").read_bytes()


def capture_names() -> list[str]:
    return sorted(p.stem for p in captures_dir().glob("*.bin"))
