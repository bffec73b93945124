"""Every host the router may use, with its health, and the order to try them in.

``HostPool.backend(server)`` gives the one backend per discovered server (declared
hosts keep their name, trust and token; others are implicit hosts named as discovery
names them). ``arrange(candidates, sensitive)`` is the routing step: drop hosts that
may not see sensitive data, skip hosts cooling down (probing those whose cooldown
ended), and order the rest (``select.order``); embedded and remote candidates keep
their place after every host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from ..errors import NoBackend, SensitiveDataBlocked
from ..http import EgressPolicy
from ..settings import Settings, SettingsError
from ..types import ServerInfo
from .backend import HostBackend
from .health import Health
from .select import rank
from .spec import HostSpec, HostSpecError, declared_hosts, default_trust, url_key


class HasBackend(Protocol):
    @property
    def backend(self) -> Any: ...
    @property
    def model(self) -> str: ...


C = TypeVar("C", bound=HasBackend)


def load_specs(settings: Settings) -> list[HostSpec]:
    try:
        return declared_hosts(settings.hosts, settings.servers)
    except HostSpecError as exc:
        raise SettingsError(f"{settings.config_file}: {exc}; fix it with `localinfer hosts` "
                            "or by hand") from None


class HostPool:
    def __init__(self, settings: Settings, policy: EgressPolicy) -> None:
        self._settings = settings
        self._policy = policy
        self.specs = load_specs(settings)
        self._by_key = {s.key: s for s in self.specs}
        self._health: dict[str, Health] = {}
        self._backends: dict[str, HostBackend] = {}
        self._retired: list[HostBackend] = []  # replaced backends, closed on aclose
        self._seen: dict[tuple[str, str, int] | None, ServerInfo] = {}
        # Per-request fast paths, keyed by the identity of the sweep's (shared) objects.
        self._by_source: dict[int, HostBackend] = {}
        self._last_ids: tuple[int, ...] = ()
        self._last_remembered: list[ServerInfo] = []
        for spec in self.specs:
            self._register(spec)

    def _register(self, spec: HostSpec) -> None:
        key = spec.key
        if key is not None:
            # The ledger records each request's trust class from this table.
            self._policy.trust[(key[1], key[2])] = spec.trust

    def spec_for(self, server: ServerInfo) -> HostSpec:
        spec = self._by_key.get(url_key(server.base_url))
        if spec is None:
            spec = HostSpec(url=server.base_url, trust=default_trust(server.base_url),
                            declared=False)
            self._by_key[spec.key] = spec
            self._register(spec)
        return spec

    def health(self, name: str) -> Health:
        found = self._health.get(name)
        if found is None:
            found = Health()
            self._health[name] = found
        return found

    def backend(self, server: ServerInfo) -> HostBackend:
        """One backend (and connection pool) per host; its model list refreshed."""
        known = self._by_source.get(id(server))
        if known is not None and known.source is server:
            return known  # the same sweep as last request: nothing to look up
        spec = self.spec_for(server)
        name = spec.name or server.name
        backend = self._backends.get(name)
        if backend is None or backend.api_base != server.api_base.rstrip("/"):
            if backend is not None:  # moved: its connections are closed with the pool's
                self._retired.append(backend)
            backend = HostBackend(spec, server, self.health(name), self._settings,
                                  self._policy)
            self._backends[name] = backend
        if backend.source is not None:  # an older sweep's entry goes (no growth)
            self._by_source.pop(id(backend.source), None)
        backend.seen(server)
        self._by_source[id(server)] = backend
        return backend

    def remembered(self, servers: list[ServerInfo]) -> list[ServerInfo]:
        """``servers`` plus each declared host seen before that this sweep missed (it
        may have just stopped: a failed request or probe then cools it down, and a
        probe brings it back without waiting for the next sweep)."""
        ids = tuple(map(id, servers))
        if ids == self._last_ids:
            return self._last_remembered  # the same sweep: the same answer
        found = {url_key(s.base_url) for s in servers}
        for server in servers:
            if self.spec_for(server).declared:
                self._seen[url_key(server.base_url)] = server
        missed = [s for key, s in self._seen.items() if key not in found]
        self._last_ids, self._last_remembered = ids, [*servers, *missed]
        return self._last_remembered

    async def _probe(self, backend: HostBackend) -> None:
        health = backend.health
        if not health.claim_probe():
            return
        try:
            why = await backend.probe()
        finally:
            health.release_probe()
        if why is None:
            health.recovered()
        else:
            health.probe_failed(why)

    async def arrange(self, candidates: Sequence[C], *, sensitive: bool) -> list[C]:
        hosts = [c for c in candidates if isinstance(c.backend, HostBackend)]
        rest = [c for c in candidates if not isinstance(c.backend, HostBackend)]
        if not hosts:
            return list(rest)
        allowed = [c for c in hosts if c.backend.spec.takes_sensitive] if sensitive else hosts
        states = [c.backend.health.state() for c in allowed]
        if "probe" in states:
            waiting = {id(c.backend): c.backend
                       for c, state in zip(allowed, states, strict=True) if state == "probe"}
            await asyncio.gather(*(self._probe(b) for b in waiting.values()))
            states = [c.backend.health.state() for c in allowed]
        healthy = [c for c, state in zip(allowed, states, strict=True) if state == "up"]
        # Sorted after the last await, so the chosen host's outstanding count goes up
        # (HostBackend does it before its first await) before anyone else chooses.
        ranked = sorted(healthy, key=lambda c: rank(c.backend))
        if ranked or rest:
            return ranked + rest
        cooling = ", ".join(f"{c.backend.name} (retry in {c.backend.health.retry_in():.0f} s: "
                            f"{c.backend.health.last_error})" for c in allowed)
        blocked = sorted({c.backend.name for c in hosts if c not in allowed})
        if blocked:
            down = f"the hosts allowed to serve it are down: {cooling}; " if allowed else ""
            raise SensitiveDataBlocked(
                f"sensitive request: {down}lan hosts ({', '.join(blocked)}) never receive "
                "sensitive data unless trusted (`localinfer hosts add URL --trusted`)")
        raise NoBackend(f"every host that can serve this is down: {cooling}")

    def silent(self, answering: Sequence[object], *, sensitive: bool) -> list[HostSpec]:
        """The hosts the user named (config.toml, LOCALINFER_SERVERS) that are not among
        ``answering`` (the backends that listed models): a model asked for may live on
        one of them, so "not found" would be a guess. Sensitive: only those allowed."""
        up = {b.spec.key for b in answering if isinstance(b, HostBackend)}
        return [s for s in self.specs if s.key not in up
                and (s.takes_sensitive or not sensitive)]

    def report(self) -> list[dict[str, Any]]:
        """Each host known so far: its spec and health (status --json ``hosts``)."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for name, backend in self._backends.items():
            seen.add(name)
            rows.append({**backend.spec.to_json(), "name": name, "kind": backend.kind,
                         "api_base": backend.api_base, "found": True,
                         **backend.health.to_json()})
        for spec in self.specs:
            if spec.name is not None and spec.name not in seen:
                rows.append({**spec.to_json(), "kind": None, "api_base": None,
                             "found": False, **self.health(spec.name).to_json()})
        return rows

    async def aclose(self) -> None:
        for backend in [*self._backends.values(), *self._retired]:
            await backend.aclose()
        self._retired.clear()

