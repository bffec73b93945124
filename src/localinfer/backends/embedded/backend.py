"""The embedded tier: llama.cpp in a worker process, behind the Backend contract.

Why a process and not a thread: a crash (or a hang) inside llama.cpp must not take the
caller, or the gateway, down with it. The worker loads the model once and stays warm;
if it dies or stalls, the request in flight gets a BackendError and the next request
starts a fresh worker.

Several requests at once per worker: each request's events carry its id, and the
worker decodes up to ``embedded_parallel`` of them together, one sequence each, in one
batch per step (worker.py, generate.py); the rest wait in the worker, in order. The
asyncio.Lock here only keeps two first requests from starting two workers; it belongs
to the event loop that last used the backend; using one backend from two loops at once
is not supported.

Cancellation: closing the stream (``aclose()``, ``break`` out of ``async for`` followed
by closing, or cancelling the task) tells the worker to stop between two tokens and
waits for it to confirm; if it does not within ``CANCEL_GRACE`` seconds it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Final

from ...assets.bundled import MODEL_ID, bundled_model_path
from ...assets.gguf import GGUFInfo, validate_gguf
from ...errors import (
    BackendError,
    BackendTimeout,
    BadModelFile,
    ContextLengthExceeded,
    ModelNotFound,
    UsageError,
)
from ...files import safe_resolve
from ...settings import Settings
from ...types import (
    ChatChunk,
    ChatRequest,
    ChatStream,
    ChunkChoice,
    Delta,
    ModelInfo,
    Usage,
    new_id,
)
from ..base import Backend
from ..template_caps import renders_tools
from .params import llama_chat_params
from .process import EXITED, Event, WorkerProcess

GENERATE_SCRIPT: Final = Path(__file__).with_name("generate.py")
CANCEL_GRACE: Final = 5.0  # generous: a loaded machine may take seconds to answer
STALLED: Final = "stalled"  # the watchdog's marker event
ACCEPTED_DEFAULTS: Final = frozenset({"", "default"})


class EmbeddedBackend(Backend):
    name = "embedded"
    kind = "llama.cpp"
    tier = "embedded"

    def __init__(self, settings: Settings, *, model_path: Path | None = None) -> None:
        self.settings = settings
        self._explicit = model_path or settings.embedded_model
        self._info: GGUFInfo | None = None
        self._info_stamp: tuple[int, int, int] | None = None
        self._worker: WorkerProcess | None = None
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._ids = itertools.count(1)
        # Seconds, for benchmarks: the current worker's import and load, and the last
        # request's decode (first to last token, measured inside the worker).
        self.timings: dict[str, float] = {}
        # Requests the worker confirmed it stopped (an "end" with cancelled=True) after the
        # caller closed the stream: how tests know generation stopped, without timing it.
        self.cancels_confirmed = 0
        # Which generation loop serves requests: "native" (our own, generate.py; the
        # high-level one still serves what it cannot, e.g. tool calls) or "high-level"
        # (llama-cpp-python's create_chat_completion), and whether a prompt's shared
        # prefix reuses the KV cache. Knobs for tests and benchmarks.
        self.loop = "native"
        self.prefix_reuse = True
        # What the worker computes with (CPU features, threads, GPU offload), once loaded.
        self.compute: dict[str, Any] = {}
        self.last_loop = ""  # the loop that served the last finished request

    # -- identity ------------------------------------------------------------------------

    @property
    def model_path(self) -> Path:
        """The GGUF this backend serves (BadModelFile if the bundled one is missing)."""
        if self._explicit is not None:
            return Path(self._explicit).expanduser()
        return bundled_model_path(self.settings.home)

    @property
    def model_id(self) -> str:
        return MODEL_ID if self._is_bundled() else self.model_path.stem

    def _is_bundled(self) -> bool:
        try:
            bundled = bundled_model_path(self.settings.home)
        except BadModelFile:
            return False
        return self._explicit is None or safe_resolve(self.model_path) == bundled.resolve()

    def _aliases(self) -> list[str]:
        path = self.model_path
        names = [path.name, path.stem, str(path)]
        if self._is_bundled():
            names += ["smollm2", "SmolLM2"]
        return list(dict.fromkeys(n for n in names if n != self.model_id))

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id while one runs (tests and diagnostics)."""
        worker = self._worker
        return worker.pid if worker is not None and worker.alive else None

    # -- the contract ----------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        try:
            _ = self.model_path
        except BadModelFile:
            if self._explicit is None:
                return []  # no bundled model installed: this tier has nothing to offer
            raise
        info = await self._validated()
        return [ModelInfo(id=self.model_id, backend=self.name, tier=self.tier,
                          capabilities=["chat"], loaded=self.worker_pid is not None,
                          aliases=self._aliases(), tools=_template_tools(info))]

    async def warm(self) -> None:
        """Start the worker and load the model now, ahead of the first request."""
        async with self._loop_lock():
            await self._ready_worker()

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        self._check_model(model)
        forced = isinstance(request.tool_choice, dict)  # llama-cpp-python's grammar call
        if request.tools and not forced and _template_tools(await self._validated()) is False:
            # The template would drop them: the model would answer as if none were offered.
            raise UsageError(
                f"the embedded model '{self.model_id}' cannot take tools: its chat template "
                "does not render them; run a GGUF whose template does (e.g. Qwen2.5-Instruct) "
                "with -m FILE.gguf, or send the request without tools")
        params = llama_chat_params(request)
        for retry in (True, False):
            async with self._loop_lock():
                worker = await self._ready_worker()
            # aclosing: when our caller closes us, the inner generator must stop the
            # request now, not later from the garbage collector.
            chunks = self._generate(worker, params, model or self.model_id)
            async with contextlib.aclosing(chunks):
                try:
                    async for chunk in chunks:
                        yield chunk
                    return
                except _DeadOnArrival:
                    # The worker had died while idle, before it saw this request:
                    # nothing was attempted, so one fresh worker may take it.
                    if not retry:
                        raise

    async def aclose(self) -> None:
        self._discard(self._worker)

    async def compute_report(self) -> dict[str, Any]:
        """What the engine computes with, for ``status``: the loaded worker's own report,
        else a probe of the llama.cpp build in a short-lived process (llama.cpp stays
        out of this one)."""
        info = dict(self.compute)
        source = "engine"
        if not info:
            source = "probe"
            info = await asyncio.to_thread(_probe_build)
            wanted = self.settings.embedded_gpu_layers
            info.update(gpu_layers_requested=wanted,
                        gpu_layers=wanted if info.get("gpu_offload_supported") else 0,
                        threads=self.settings.embedded_threads or os.cpu_count() or 1)
        layers = info.get("gpu_layers", 0)
        return {
            "source": source,  # "engine": the loaded worker said so; "probe": the build
            "threads": info.get("threads"),
            "cpu_features": info.get("cpu_features", []),
            "gpu_offload": {"supported": bool(info.get("gpu_offload_supported")),
                            "layers_requested": info.get("gpu_layers_requested"),
                            "used": layers != 0,
                            "layers": info.get("model_layers") if layers == -1 else layers},
            "vram_bytes": None,  # llama-cpp-python exposes no device memory query
            "system_info": info.get("system_info", ""),
        }

    # -- one request -------------------------------------------------------------------------

    async def _generate(self, worker: WorkerProcess, params: dict[str, Any],
                        model: str) -> AsyncGenerator[ChatChunk, None]:
        rid = next(self._ids)
        events = worker.subscribe(asyncio.get_running_loop(), rid)
        worker.send({"op": "chat", "id": rid, "params": params, "loop": self.loop,
                     "reuse": self.prefix_reuse})
        chunk_id, created = new_id("chatcmpl"), int(time.time())
        yielded = finished = begun = False

        def chunk(delta: dict[str, Any], finish: str | None = None,
                  usage: Usage | None = None) -> ChatChunk:
            return ChatChunk(id=chunk_id, created=created, model=model, usage=usage,
                             choices=[ChunkChoice(delta=Delta(**delta), finish_reason=finish)],
                             backend=self.name, tier=self.tier)

        try:
            while True:
                event = await self._next_event(events, worker, first=not yielded)
                kind = event["ev"]
                if kind == "begin":
                    begun = True
                elif kind == "delta":
                    yielded = True
                    yield chunk(event["d"])
                elif kind == "end":
                    finished = True
                    self.timings["decode_s"] = float(event.get("decode_s", 0.0))
                    self.timings["prefill_s"] = float(event.get("prefill_s", 0.0))
                    self.timings["reused_tokens"] = float(event.get("reused_tokens", 0))
                    self.last_loop = str(event.get("loop", ""))
                    usage = Usage(**event["usage"])
                    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
                    yield chunk({}, event.get("finish") or "stop", usage)
                    return
                elif kind == "error":
                    finished = True
                    if event.get("kind") == "context_length":
                        raise ContextLengthExceeded(model, int(event["tokens"]),
                                                    int(event["limit"]), backend=self.name)
                    raise BackendError(f"embedded engine: {event['message']}",
                                       backend=self.name, before_first_token=not yielded)
                elif kind == EXITED:
                    finished = True
                    self._discard(worker)
                    raise (BackendError if begun else _DeadOnArrival)(
                        f"embedded engine {worker.exit_reason()}; "
                        "the next request starts a fresh one",
                        backend=self.name, before_first_token=not yielded)
        finally:
            try:
                if not finished and worker is self._worker:
                    await self._stop(worker, events, rid)
            finally:
                worker.unsubscribe(rid)

    async def _next_event(self, events: asyncio.Queue[Event], worker: WorkerProcess, *,
                          first: bool, timeout: float | None = None) -> Event:
        timeout = timeout or self.settings.embedded_stall_timeout
        loop = asyncio.get_running_loop()
        # A timer that drops a marker into the queue: cheaper per token than wait_for
        # (no task per event). A marker from an earlier, raced timer is skipped. The
        # worker is hung when it said nothing to anyone for ``timeout``: a request waiting
        # its turn behind others hears nothing itself, and that is no hang.
        while True:
            marker: Event = {"ev": STALLED}
            quiet = time.monotonic() - worker.last_event_at
            wait = timeout if quiet >= timeout else max(timeout - quiet, 0.01)
            timer = loop.call_later(wait, events.put_nowait, marker)
            try:
                event = await events.get()
                while event["ev"] == STALLED and event is not marker:
                    event = await events.get()
            finally:
                timer.cancel()
            if event is not marker or time.monotonic() - worker.last_event_at >= timeout:
                break
        if event is marker:
            self._discard(worker)
            raise BackendTimeout(
                f"embedded engine produced nothing for {timeout:g}s and was restarted "
                "(raise LOCALINFER_EMBEDDED_STALL_TIMEOUT for slow models)",
                backend=self.name, before_first_token=first)
        return event

    async def _stop(self, worker: WorkerProcess, events: asyncio.Queue[Event], rid: int) -> None:
        """The caller stopped reading: stop generation, or the worker if it won't."""
        worker.send({"op": "cancel", "id": rid})
        try:
            last = await asyncio.wait_for(_until_done(events, rid), CANCEL_GRACE)
            if last.get("cancelled"):  # the worker itself confirmed it stopped generating
                self.cancels_confirmed += 1
        except TimeoutError:
            self._discard(worker)
        except asyncio.CancelledError:  # cancelled again while stopping: no more waiting
            self._discard(worker)
            raise
        if not worker.alive:
            self._discard(worker)

    # -- the worker ------------------------------------------------------------------------

    async def _ready_worker(self) -> WorkerProcess:
        if self._worker is not None and self._worker.alive:
            return self._worker
        self._discard(self._worker)
        path = self.model_path
        # The interpreter starts and imports llama_cpp while we check the file; the
        # path only reaches llama.cpp (the "load" command) once the check has passed.
        try:
            worker = WorkerProcess(debug=self.settings.debug)
        except OSError as exc:
            raise BackendError(f"cannot start the embedded engine: {exc}",
                               backend=self.name) from None
        try:
            await self._validated()
            events = worker.subscribe(asyncio.get_running_loop())
            threads = self.settings.embedded_threads or os.cpu_count() or 1
            worker.send({"op": "load", "path": str(path), "n_ctx": self.settings.embedded_context,
                         "n_threads": threads, "verbose": self.settings.debug,
                         "gpu_layers": self.settings.embedded_gpu_layers,
                         "parallel": self.settings.embedded_parallel})
            await self._await_load(worker, events, path)
        except BaseException:
            worker.kill()
            raise
        finally:
            worker.unsubscribe(None)
        self._worker = worker
        return worker

    async def _await_load(self, worker: WorkerProcess, events: asyncio.Queue[Event],
                          path: Path) -> None:
        # Loading a big model from a cold disk can take a while: allow it the longer
        # of the stall and first-token timeouts.
        timeout = max(self.settings.embedded_stall_timeout, self.settings.first_token_timeout)
        while True:
            event = await self._next_event(events, worker, first=True, timeout=timeout)
            kind = event["ev"]
            if kind == "started":
                self.timings["import_s"] = float(event["import_s"])
            elif kind == "loaded":
                self.timings["load_s"] = float(event["load_s"])
                self.compute = dict(event.get("compute") or {})
                return
            elif kind == "error":
                raise BadModelFile(f"llama.cpp could not load {path}: {event['message']}")
            elif kind == EXITED:
                raise BackendError(f"embedded engine {worker.exit_reason()} while loading "
                                   f"{path.name}", backend=self.name)

    def _discard(self, worker: WorkerProcess | None) -> None:
        if worker is None:
            return
        worker.kill()
        if self._worker is worker:
            self._worker = None

    async def _validated(self) -> GGUFInfo:
        """validate_gguf, off the event loop, once per version of the file."""
        path = self.model_path
        try:
            st = path.stat()
            stamp: tuple[int, int, int] | None = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            stamp = None  # validate_gguf reports it
        if self._info is None or stamp is None or stamp != self._info_stamp:
            self._info = await asyncio.to_thread(validate_gguf, path)
            self._info_stamp = stamp
        return self._info

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    def _check_model(self, model: str) -> None:
        if model in ACCEPTED_DEFAULTS or model == self.model_id or model in self._aliases():
            return
        raise ModelNotFound(model, [self.model_id])


def _template_tools(info: GGUFInfo) -> bool | None:
    template = info.metadata.get("tokenizer.chat_template")
    return renders_tools(template if isinstance(template, str) else None)


def _probe_build() -> dict[str, Any]:
    try:
        done = subprocess.run([sys.executable, "-P", str(GENERATE_SCRIPT)], check=True,
                              capture_output=True, text=True, timeout=60)
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"system_info": f"unknown ({type(exc).__name__})"}


async def _until_done(events: asyncio.Queue[Event], rid: int) -> Event:
    while True:
        event = await events.get()
        if event["ev"] == EXITED or (event.get("id") == rid and event["ev"] in ("end", "error")):
            return event


class _DeadOnArrival(BackendError):
    """The worker was gone before it began the request (so a retry is safe)."""
