"""Recent pre-authentication failures per client: when the KDC stops encrypting ahead.

An AS-REQ with PA-ENC-TIMESTAMP normally has its ticket and reply encrypted while the
timestamp is still being verified (``kdc/as_req.py``): with one login at a time that takes a
login from the sum of the two MPC latencies to the larger one. Anyone who knows a principal's
name can send such requests without its password, though, and each would then cost the nodes
three evaluations under long-term keys instead of one (``kdc/preauth/__init__.py``: these are
the requests a front-end must limit). After ``threshold`` failures of one client within
``window`` seconds the KDC verifies that client's timestamp first and encrypts only after it
succeeded; a success forgets the failures. What a client sees (codes, texts, tickets) does
not change, only the order of the work. Per front-end process, bounded by ``max_entries``
(the oldest goes first).
"""

from __future__ import annotations

DEFAULT_THRESHOLD = 3
DEFAULT_WINDOW = 60.0  # seconds
DEFAULT_MAX_ENTRIES = 65536


class PreauthFailures:
    """Client principal -> (failures in the current window, when the window started)."""

    __slots__ = ("threshold", "window", "max_entries", "_entries")

    def __init__(self, threshold: int = DEFAULT_THRESHOLD, window: float = DEFAULT_WINDOW,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.threshold = threshold
        self.window = window
        self.max_entries = max_entries
        self._entries: dict[str, tuple[int, float]] = {}

    def __repr__(self) -> str:
        return f"PreauthFailures({len(self._entries)} clients)"

    def failed(self, client: str, now: float) -> None:
        count, since = self._entries.pop(client, (0, now))
        if now - since > self.window:
            count, since = 0, now
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[client] = (count + 1, since)

    def succeeded(self, client: str) -> None:
        self._entries.pop(client, None)

    def suspicious(self, client: str, now: float) -> bool:
        """True when ``client``'s pre-authentication should be verified before any
        encryption: ``threshold`` failures or more within the current window."""
        entry = self._entries.get(client)
        return entry is not None and entry[0] >= self.threshold and now - entry[1] <= self.window
