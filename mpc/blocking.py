"""A blocking face for the asyncio clients (admin tool, tests, benchmarks).

The wrapped client lives on its own event loop in a daemon thread; every coroutine method of
it becomes a blocking call, everything else is passed through.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable


class BlockingProxy:
    """Owns an event loop thread and the asyncio client ``make()`` creates on it."""

    def __init__(self, make: Callable[[], Awaitable], thread_name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=thread_name,
                                        daemon=True)
        self._thread.start()
        self._aio = self._call(make)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _call(self, fn, *args, **kwargs):
        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop).result()

    @property
    def aio(self):
        """The wrapped asyncio client."""
        return self._aio

    def __getattr__(self, name: str):
        attr = getattr(self._aio, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        def call(*args, **kwargs):
            return self._call(attr, *args, **kwargs)

        return call

    def close(self) -> None:
        try:
            self._call(self._aio.close)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=2)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
