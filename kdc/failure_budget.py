"""Per-address budget of failed operations under long-term keys: who may still cost MPC work.

Two requests make the key service work under a long-term key before anything proves that the
sender knows a secret: a PA-ENC-TIMESTAMP (decrypted under the client's key, usage 1) and a
TGS-REQ whose TGT is not in the TGT cache (decrypted under the krbtgt key, usage 2). Under
MPC each is a job of about a thousand rounds on the three nodes, and anyone can send them
(SPEC "Threat model": per-client rate limits stop unauthenticated attempts from burning MPC
capacity). A legitimate client almost never fails them; a password guesser or a flood of
forged tickets fails every one.

So every source address has a token bucket of ``burst`` failures that refills at one token
per ``interval`` seconds. A failed verification spends a token; while an address has none
left, its requests that would need such a verification are refused before any key-service
work, with KDC_ERR_POLICY and the status :data:`STATUS` as e-text (as every KRB-ERROR here,
kdc/errors.py): MIT kinit stops at once with "KDC policy rejects request", where
KDC_ERR_SVC_UNAVAILABLE would make it resend for about 27 s first. Successes cost nothing,
and requests that need no long-term key (a cached TGT, a request without pre-authentication
data) are never refused. ``burst = 0`` turns it off.

State is per front-end process and bounded by ``max_entries`` (the least recently failed
address goes first). A sender that forges UDP source addresses gets a fresh budget for each;
TCP senders cannot.
"""

from __future__ import annotations

DEFAULT_BURST = 20
DEFAULT_INTERVAL = 3.0  # seconds per regained failure: 20 per minute sustained
DEFAULT_MAX_ENTRIES = 65536
STATUS = "TOO_MANY_FAILURES"


class FailureBudget:
    """Source address -> (failures it may still spend, when that was computed)."""

    __slots__ = ("burst", "interval", "max_entries", "_entries")

    def __init__(self, burst: int = DEFAULT_BURST, interval: float = DEFAULT_INTERVAL,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if burst < 0 or interval <= 0 or max_entries <= 0:
            raise ValueError("burst must be >= 0, interval and max_entries > 0")
        self.burst = burst
        self.interval = interval
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, float]] = {}

    def __repr__(self) -> str:
        return f"FailureBudget(burst={self.burst}, {len(self._entries)} addresses)"

    def _tokens(self, entry: tuple[float, float], now: float) -> float:
        tokens, at = entry
        return min(float(self.burst), tokens + max(now - at, 0.0) / self.interval)

    def exhausted(self, address: str | None, now: float) -> bool:
        """True while ``address`` may not cost another long-term-key verification."""
        if not self.burst or address is None:
            return False
        entry = self._entries.get(address)
        return entry is not None and self._tokens(entry, now) < 1.0

    def failed(self, address: str | None, now: float) -> None:
        """``address`` failed a verification under a long-term key: spend one token."""
        if not self.burst or address is None:
            return
        entry = self._entries.pop(address, None)
        tokens = float(self.burst) if entry is None else self._tokens(entry, now)
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[address] = (max(tokens - 1.0, 0.0), now)
