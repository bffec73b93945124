"""The embedded tier: llama.cpp's own server (``xllamacpp``) in a shared child process,
spoken to by the same OpenAI HTTP backend as every local server.

What stays here is what only this tier has: which GGUF it serves (the bundled model by
default) and its names, the checks of that file before llama.cpp sees it, and the
engine's life — found or started through the home's ``Supervisor`` before a request, and
replaced when it crashed or hung. Generation, batching, prompt caching, templates, tool
calls, grammars and cancellation are llama.cpp's.
"""

from __future__ import annotations

import asyncio
import functools
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from ...assets.bundled import MODEL_ID, bundled_model_path
from ...assets.gguf import GGUFInfo, validate_gguf
from ...assets.system import memory
from ...discovery.readers import props_supports_tools
from ...errors import BackendError, BackendTimeout, BadModelFile, ModelNotFound, UsageError
from ...files import safe_resolve
from ...http import EgressPolicy, make_client
from ...settings import Settings
from ...types import ChatRequest, ChatResponse, ChatStream, ModelInfo
from ..base import Backend
from ..capabilities import Capabilities, Need, capabilities_of
from ..openai_http import OpenAIHTTPBackend
from .fit import check_fits
from .supervisor import Engine, EngineConfig, Supervisor

ACCEPTED_DEFAULTS: Final = frozenset({"", "default"})
TEMPLATES: Final = Path(__file__).with_name("templates")


def chat_template_path(value: Path | None) -> str | None:
    """``embedded_chat_template``: a Jinja file, or the name of one localinfer ships."""
    if value is None:
        return None
    shipped = TEMPLATES / f"{value}.jinja"
    if not Path(value).expanduser().exists() and shipped.is_file():
        return str(shipped)
    path = Path(value).expanduser()
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in TEMPLATES.glob("*.jinja")))
        raise UsageError(f"embedded_chat_template {value}: no such file (nor a template "
                         f"localinfer ships: {names})")
    return str(path.resolve())


@dataclass(frozen=True)
class _Identity:
    path: Path  # as configured (or the bundled file)
    resolved: Path  # the real file llama.cpp opens
    model_id: str
    aliases: list[str]


class EmbeddedBackend(Backend):
    name = "embedded"
    kind = "llama.cpp"
    tier = "embedded"

    def __init__(self, settings: Settings, *, model_path: Path | None = None) -> None:
        self.settings = settings
        self._explicit = model_path or settings.embedded_model
        self._info: tuple[tuple[int, int, int] | None, GGUFInfo] | None = None
        self.supervisor = Supervisor(
            settings.home, idle_timeout=settings.embedded_idle_timeout,
            start_timeout=max(settings.embedded_stall_timeout, settings.first_token_timeout))
        # The engine this process last used, and our HTTP backend for it.
        self._engine: tuple[Engine, OpenAIHTTPBackend] | None = None
        self._props: tuple[int, dict[str, Any]] | None = None  # (engine pid, /props)
        # Whether the chat template renders tools, as the engine of these settings said
        # (its /props caps): known once asked, for every later engine of the same settings.
        self._tools: tuple[Settings, bool | None] | None = None
        self._ident: tuple[Settings, _Identity] | None = None
        self._listed: tuple[tuple[Any, ...], list[ModelInfo]] | None = None

    # -- identity ------------------------------------------------------------------------

    def _identity(self) -> _Identity:
        """Which file this backend serves and its names, worked out once (finding the
        bundled model asks package metadata: ~1 ms) and again only when that file is gone
        or the settings were replaced; BadModelFile when there is none."""
        cached = self._ident
        if cached is not None and cached[0] is self.settings and cached[1].path.is_file():
            return cached[1]
        if self._explicit is not None:
            path = Path(self._explicit).expanduser()
        else:
            path = bundled_model_path(self.settings.home)
        try:
            bundled: Path | None = bundled_model_path(self.settings.home).resolve()
        except BadModelFile:
            bundled = None
        resolved = safe_resolve(path)
        is_bundled = bundled is not None and resolved == bundled
        model_id = MODEL_ID if is_bundled else path.stem
        names = [path.name, path.stem, str(path)] + (["smollm2", "SmolLM2"] if is_bundled else [])
        identity = _Identity(path, resolved, model_id,
                             list(dict.fromkeys(n for n in names if n != model_id)))
        self._ident = (self.settings, identity)
        return identity

    @property
    def model_path(self) -> Path:
        """The GGUF this backend serves (BadModelFile if the bundled one is missing)."""
        return self._identity().path

    @property
    def model_id(self) -> str:
        return self._identity().model_id

    def config(self) -> EngineConfig:
        threads = self.settings.embedded_threads or os.cpu_count() or 1
        identity = self._identity()
        return EngineConfig(
            model=str(identity.resolved), context=self.settings.embedded_context,
            parallel=self.settings.embedded_parallel, threads=threads,
            gpu_layers=self.settings.embedded_gpu_layers,
            chat_template=chat_template_path(self.settings.embedded_chat_template),
            alias=identity.model_id)

    @property
    def engine_pid(self) -> int | None:
        """The home's engine process while one runs (this process's or another's)."""
        running = self.supervisor.running()
        return running.pid if running is not None else None

    # -- the contract --------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        try:
            identity = self._identity()
        except BadModelFile:
            if self._explicit is None:
                return []  # no bundled model installed: this tier has nothing to offer
            raise
        await self._validated(identity)
        # The one model, built again only when a fact in it changed (each request lists it).
        key = (identity, self.supervisor.running() is not None, self._known_tools())
        if self._listed is None or self._listed[0] != key:
            self._listed = (key, [ModelInfo(
                id=identity.model_id, backend=self.name, tier=self.tier,
                capabilities=["chat"], loaded=key[1], aliases=list(identity.aliases),
                tools=key[2])])
        return list(self._listed[1])

    async def capabilities(self, model: ModelInfo | None,
                           needs: frozenset[Need] = frozenset()) -> Capabilities:
        """llama.cpp's, bounded by this engine's settings: ``n`` by its slots, a request by
        a slot's context. Whether the template renders tools is the engine's to say: a
        request with tools finds or starts it (as serving would) and asks, once."""
        if "tools" in needs and self._known_tools() is None:
            engine, _ = await self._ready()
            await self._learn_tools(engine)
        return replace(capabilities_of(self.kind), tools=self._known_tools(),
                       max_choices=self.settings.embedded_parallel,
                       context=self.settings.embedded_context,
                       context_setting="embedded_context")

    async def warm(self) -> Engine:
        """Find or start the engine now, ahead of the first request."""
        await self._validated(self._identity())
        engine, _ = await self._client()
        return engine

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        served = self._check_model(model)
        _, http = await self._ready()
        started = False
        try:
            async for chunk in http.stream_chat(request, served):
                started = True
                yield chunk
        except BackendError as exc:
            await self._after_failure(exc, http)
            exc.before_first_token = exc.before_first_token and not started
            raise

    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        served = self._check_model(model)
        _, http = await self._ready()
        try:
            return await http.chat(request, served)
        except BackendError as exc:
            await self._after_failure(exc, http)
            raise

    async def aclose(self) -> None:
        """Close this process's connections. The engine is shared: it stays for the
        other processes of the home and stops by itself when idle."""
        if self._engine is not None:
            await self._engine[1].aclose()
            self._engine = None

    async def stop_engine(self) -> bool:
        """Stop the home's engine now (as ``localinfer engine stop`` does)."""
        await self.aclose()
        return await asyncio.to_thread(self.supervisor.stop)

    async def compute_report(self) -> dict[str, Any]:
        """What the engine computes with, for ``status``: the running engine's own report
        (llama.cpp's CPU features and devices, its build), else the wheel's, probed here."""
        running = self.supervisor.running()
        info = dict(running.compute or {}) if running is not None else {}
        source = "engine"
        if not info:
            source = "probe"
            info = await asyncio.to_thread(_probe_build)
        wanted = self.settings.embedded_gpu_layers
        supported = bool(info.get("gpu_offload_supported"))
        props = self._props[1] if self._props and running and self._props[0] == running.pid \
            else {}
        return {
            "source": source,  # "engine": the running engine said so; "probe": the wheel
            "threads": self.settings.embedded_threads or os.cpu_count() or 1,
            "cpu_features": _cpu_features(str(info.get("system_info", ""))),
            "gpu_offload": {"supported": supported, "layers_requested": wanted,
                            "used": supported and wanted != 0},
            "devices": info.get("devices", []),
            "engine": {"package": "xllamacpp", "version": info.get("xllamacpp"),
                       "build_info": props.get("build_info")},
            "system_info": info.get("system_info", ""),
        }

    # -- the engine ----------------------------------------------------------------------

    async def _ready(self) -> tuple[Engine, OpenAIHTTPBackend]:
        """The engine, found or started (the file checked, and whether it fits, first)."""
        info = await self._validated(self._identity())
        if self.supervisor.running() is None:  # about to start one: will it fit?
            await asyncio.to_thread(self._check_fits, info)
        return await self._client()

    async def _client(self) -> tuple[Engine, OpenAIHTTPBackend]:
        """This process's client for the home's engine; an engine that went away (idle
        stop, crash, replaced by another process) is found or started again."""
        config = self.config()
        cached = self._engine
        if cached is not None and cached[0].fingerprint == config.fingerprint():
            running = self.supervisor.running()
            if running is not None and running.pid == cached[0].pid:
                return cached
        engine = await asyncio.to_thread(self.supervisor.ensure, config)
        if cached is not None and cached[0] == engine:
            return cached
        if cached is not None:
            await cached[1].aclose()
        http = OpenAIHTTPBackend(
            name=self.name, kind="xllamacpp", tier=self.tier, api_base=engine.url + "/v1",
            # The engine is part of localinfer on loopback, not an egress to record.
            policy=EgressPolicy(offline=self.settings.offline), api_key=engine.key,
            connect_timeout=self.settings.connect_timeout,
            first_token_timeout=self.settings.embedded_stall_timeout,
            request_timeout=self.settings.request_timeout,
            max_response_bytes=self.settings.max_response_bytes)
        self._engine = (engine, http)
        return self._engine

    async def _after_failure(self, exc: BackendError, http: OpenAIHTTPBackend) -> None:
        """A crashed or hung engine is replaced for the next request: a hung one is
        stopped (it would hang every process's requests), a dead one forgotten."""
        cached = self._engine
        if cached is None or cached[1] is not http:
            return
        engine = cached[0]
        if isinstance(exc, BackendTimeout) or self.supervisor.running() is None:
            await asyncio.to_thread(self.supervisor.discard, engine)
            await http.aclose()
            self._engine = None
            if not isinstance(exc, BackendTimeout):
                exc.message = (f"the embedded engine stopped mid-request ({exc.message}); "
                               "the next request starts a fresh one")

    async def _learn_tools(self, engine: Engine) -> None:
        props = await self._props_of(engine)
        if props is not None:
            self._tools = (self.settings, props_supports_tools(props))

    async def _props_of(self, engine: Engine) -> dict[str, Any] | None:
        """llama-server's /props (chat template caps, build), once per engine process."""
        if self._props is not None and self._props[0] == engine.pid:
            return self._props[1]
        client = make_client(EgressPolicy(), tier=self.tier, base_url=engine.url,
                             headers={"authorization": f"Bearer {engine.key}"})
        try:
            response = await client.get("/props")
            props = response.json() if response.status_code == 200 else None
        except Exception:
            props = None
        finally:
            await client.aclose()
        if isinstance(props, dict):
            self._props = (engine.pid, props)
            return props
        return None

    def _check_fits(self, info: GGUFInfo) -> None:
        """Host memory for the weights and every slot's KV cache; skipped when layers go
        to a GPU this build has (the weights then live in its memory)."""
        wanted = self.settings.embedded_gpu_layers
        if wanted != 0 and _build_has_gpu():
            return
        check_fits(info, self.settings.embedded_context, self.settings.embedded_parallel,
                   memory())

    def _known_tools(self) -> bool | None:
        """Whether the engine's chat template renders tools (its /props caps); unknown
        until this process has asked an engine of the current settings."""
        known = self._tools
        return known[1] if known is not None and known[0] is self.settings else None

    async def _validated(self, identity: _Identity) -> GGUFInfo:
        """validate_gguf, off the event loop, once per version of the file."""
        path = identity.path
        try:
            st = path.stat()
            stamp: tuple[int, int, int] | None = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            stamp = None  # validate_gguf reports it
        if self._info is None or stamp is None or stamp != self._info[0]:
            self._info = (stamp, await asyncio.to_thread(validate_gguf, path))
        return self._info[1]

    def _check_model(self, model: str) -> str:
        """The id of the model this backend serves, when ``model`` names it."""
        identity = self._identity()
        if model in ACCEPTED_DEFAULTS or model == identity.model_id or model in identity.aliases:
            return identity.model_id
        raise ModelNotFound(model, [identity.model_id])


def _cpu_features(system_info: str) -> list[str]:
    """``AVX2 = 1 | FMA = 1 | …`` → ["AVX2", "FMA", …] (the features llama.cpp uses)."""
    found = []
    for part in system_info.replace("CPU :", "|").split("|"):
        name, _, value = part.partition("=")
        if value.strip() == "1":
            found.append(name.strip())
    return found


@functools.cache
def _build_has_gpu() -> bool:
    return bool(_probe_build().get("gpu_offload_supported"))


def _probe_build() -> dict[str, Any]:
    """The wheel's own report, without loading a model (imports llama.cpp here)."""
    try:
        from .engine import compute_report

        return compute_report({"threads": os.cpu_count() or 1, "gpu_layers": 0})
    except Exception as exc:  # the wheel is missing or does not load on this machine
        return {"system_info": f"unknown ({type(exc).__name__}: {exc})"}
