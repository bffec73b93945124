"""A Router over given backends: the local tier is a fixed list (no discovery), the
embedded tier the given backends' factories."""

from __future__ import annotations

from localinfer.backends.base import Backend
from localinfer.http import EgressPolicy
from localinfer.router import RemoteTier, Router
from localinfer.settings import Settings
from tests.fake_backend import StaticDiscovery


class StubRouter(Router):
    def __init__(self, local: list[Backend], embedded: list[Backend],
                 remote: RemoteTier | None = None) -> None:
        async def make(b: Backend) -> Backend:
            return b

        factories = [lambda b=b: make(b) for b in embedded]
        super().__init__(Settings(home="/nonexistent-test-home"), EgressPolicy(),
                         StaticDiscovery(), embedded=factories, remote=remote)  # type: ignore[arg-type]
        self._local = local

    async def local_backends(self, *, refresh: bool = False) -> list[Backend]:
        return list(self._local)
