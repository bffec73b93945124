"""A discovery sweep shared by everyone who asks within a few seconds."""

from __future__ import annotations

import asyncio
import time

from ..http import EgressPolicy, Transport
from ..settings import Settings
from ..types import ServerInfo
from .sweep import discover


class Discovery:
    """Caches a sweep for ``settings.discovery_ttl`` seconds; concurrent callers share one
    in-flight sweep instead of each probing the machine."""

    def __init__(self, settings: Settings, policy: EgressPolicy, *,
                 transport: Transport | None = None) -> None:
        self._settings = settings
        self._policy = policy
        self._transport = transport
        self._result: list[ServerInfo] | None = None
        self._swept_at = 0.0
        self._inflight: asyncio.Task[list[ServerInfo]] | None = None
        self._inflight_loop: asyncio.AbstractEventLoop | None = None

    def _fresh(self) -> bool:
        return (self._result is not None
                and time.monotonic() - self._swept_at < self._settings.discovery_ttl)

    async def servers(self, *, refresh: bool = False, copy: bool = True) -> list[ServerInfo]:
        """The servers found; ``refresh=True`` forces a new sweep (or joins one running).
        ``copy=False`` (the router's per-request path) shares the cached objects: the
        caller promises not to change them."""
        if not refresh and self._fresh():
            return self._copy() if copy else list(self._result or [])
        loop = asyncio.get_running_loop()
        task = self._inflight
        # A task belongs to one event loop; a sync wrapper may use a new loop per call.
        if task is None or task.done() or self._inflight_loop is not loop:
            task = loop.create_task(self._sweep())
            self._inflight, self._inflight_loop = task, loop
        # shield: one impatient caller being cancelled must not cancel everyone's sweep.
        await asyncio.shield(task)
        return self._copy() if copy else list(self._result or [])

    async def _sweep(self) -> list[ServerInfo]:
        result = await discover(self._settings, self._policy, transport=self._transport)
        self._result, self._swept_at = result, time.monotonic()
        return result

    def _copy(self) -> list[ServerInfo]:
        # Callers get their own objects, so one caller editing a result cannot change
        # what the next one sees.
        # Field by field rather than deepcopy: routing asks on every request, and deepcopy
        # cost ~100 µs per server (bench/bench_hosts.py).
        return [server.model_copy(update={"models": [
            m.model_copy(update={"capabilities": list(m.capabilities), "aliases": list(m.aliases)})
            for m in server.models]}) for server in self._result or []]

    def invalidate(self) -> None:
        """Forget the cached sweep (e.g. after a backend failed)."""
        self._result = None
