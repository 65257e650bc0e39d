"""Pieces shared by the MIT-compatible command lines (kinit, klist, kvno).

Errors are printed the way MIT's ``com_err`` prints them: ``prog: message while doing X``,
on stderr, exit status 1, never a traceback.
"""

from __future__ import annotations

import sys
import time


class CliFailure(Exception):
    """Stop a command with ``message`` on stderr and exit status 1."""


def report(prog: str, message: str) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return 1


# MIT krb5_timestamp_to_sfstring tries these strftime formats in turn and keeps the first that
# fits the buffer (str_conv.c); klist sizes its columns by what fits for "now".
_SFTIME_FORMATS = (
    "%c",
    "%d %b %Y %T",
    "%x %X",
    "%x %T",
    "%x %R",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y%m%d%H%M%S",
    "%Y%m%d%H%M",
)


def sftime(timestamp: int, max_chars: int) -> str:
    """Local time of ``timestamp`` in the first MIT format not longer than ``max_chars``."""
    tm = time.localtime(timestamp)
    for fmt in _SFTIME_FORMATS:
        text = time.strftime(fmt, tm)
        if len(text) <= max_chars:
            return text
    return ""


def timestamp_width(now: int | None = None) -> int:
    """klist's column width: what ``sftime`` gives for now in 19 characters (MIT: 20-byte buf)."""
    text = sftime(int(time.time()) if now is None else now, 19)
    return len(text) if text else 15


def guarded(prog: str, body, argv: list[str]) -> int:
    """Run ``body(argv)``; any unexpected exception becomes a one-line message and status 1."""
    try:
        return body(argv)
    except KeyboardInterrupt:
        return report(prog, "Interrupted")
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback on the command line
        return report(prog, f"unexpected error ({type(exc).__name__}): {exc}")
