"""A small cache for read-model queries, stale-while-revalidate: an answer younger than `ttl` is served as
is; an older one is still served at once while a single background task recomputes it, so readers never
queue behind a heavy aggregate query. Nothing older than `max_stale` is served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class TtlCache:
    def __init__(self, ttl: float, max_entries: int = 2048, max_stale: float = 30.0) -> None:
        self.ttl = ttl
        self.max_stale = max_stale
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._refreshing: dict[Hashable, asyncio.Task[Any]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        if self.ttl <= 0:
            return await compute()
        hit = self._entries.get(key)
        now = time.monotonic()
        if hit is not None:
            age = now - hit[0]
            if age < self.ttl:
                return hit[1]
            if age < self.max_stale:
                if key not in self._refreshing:
                    self._refreshing[key] = asyncio.create_task(self._refresh(key, compute))
                return hit[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # the first computation of a key: one at a time, the others wait for it
            hit = self._entries.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
            return await self._store(key, await compute())

    async def _refresh(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> None:
        try:
            await self._store(key, await compute())
        except Exception:
            self._entries.pop(key, None)
        finally:
            self._refreshing.pop(key, None)

    async def _store(self, key: Hashable, value: Any) -> Any:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)
        return value
