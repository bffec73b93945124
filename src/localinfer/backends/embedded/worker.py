"""The embedded engine's worker process: llama.cpp (via llama-cpp-python), one model,
several requests at once (one sequence each, decoded together in one batch per step),
commands in on stdin, events out on a private pipe.

Run as a script by path (``python .../worker.py``), not as ``-m localinfer...``: that
would import the localinfer package and its dependencies, and the worker's start-up
time is the embedded tier's cold time to first token. So this file uses only the
standard library and imports ``llama_cpp`` itself.

Protocol, one JSON object per line:

    parent -> worker (stdin)
      {"op": "load", "path": str, "n_ctx": int, "n_threads": int, "verbose": bool,
       "gpu_layers": int, "parallel": int}  -1 = all; used only where offload exists;
                                        parallel: requests decoded at once, n_ctx each
      {"op": "chat", "id": int, "params": {...create_chat_completion kwargs...},
       "loop": "native"|"high-level", "reuse": bool}   which generation loop (default
                                        native where it handles the request), and whether
                                        the KV cache of a shared prompt prefix is kept
      {"op": "cancel", "id": int}          stop that request between two tokens
    worker -> parent (the original stdout, kept apart from fd 1)
      {"ev": "started", "import_s": float}                    llama_cpp imported
      {"ev": "loaded", "load_s": float, "n_ctx": int, "compute": {...}}
      {"ev": "begin", "id": int}                              a chat request received
      {"ev": "delta", "id": int, "d": {...}}                  one streamed delta
      {"ev": "end", "id": int, "finish": str|null, "usage": {...}, "cancelled": bool,
       "decode_s": float, "loop": str,             first to last generated token
       "reused_tokens": int, "prefill_s": float}   (native loop) prompt cache reuse
      {"ev": "error", "id": int|null, "message": str}         request or load failed
       (+ "kind": "context_length", "tokens", "limit" when the prompt does not fit)

Scheduling: requests our loop handles are admitted in arrival order while a sequence is
free, and each step decodes all of them together (generate.py). A request for the
high-level path (tool calls, models without a GGUF template) has the context to itself:
it waits for the running ones to finish, and later arrivals wait behind it.

stdin closing means the parent is gone: the worker exits at once.
"""

from __future__ import annotations

import os
import sys

# Run by path, Python puts this package's directory first on sys.path, where our
# sibling modules (backend, params, process) could shadow a library's imports.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import collections
import contextlib
import importlib.util
import json
import queue
import re
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

# llama-cpp-python's words when a prompt does not fit the context window.
CONTEXT_EXCEEDED = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def load_generate() -> Any:
    """Our sibling module, by path: importing it as localinfer.* would import the
    package (slow start-up), and a sibling on sys.path could shadow libraries."""
    spec = importlib.util.spec_from_file_location(
        "localinfer_embedded_generate",
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "generate.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def read_commands(stdin: IO[bytes], inbox: queue.SimpleQueue[dict[str, Any]],
                  cancels: set[int]) -> None:
    # A cancel goes into the set only after its chat went into the inbox (same pipe,
    # in order), so the scheduler, draining the inbox before it looks at the set, always
    # knows the request a cancel is for.
    for line in stdin:
        command = json.loads(line)
        if command.get("op") == "cancel":
            cancels.add(command.get("id"))
        else:
            inbox.put(command)
    os._exit(0)  # the parent closed our stdin: it is gone or done with us


@contextlib.contextmanager
def sequences(n_seq: int) -> Iterator[None]:
    """Make the Llama being built create its context with ``n_seq`` sequences, each in
    its own part of the KV cache (Llama() has no argument for it), as llama-server -np N
    does without --kv-unified. Split, not shared: a request's cells start at the same
    place as when it runs alone, so its arithmetic, and its greedy text, is the same (in
    a shared cache the cells land elsewhere, and the SIMD sums group them differently:
    measured, answers changed); a request attends over its own cells only; and nobody
    runs out of room because of the others."""
    from llama_cpp import _internals

    original = _internals.LlamaContext

    def parallel(*, model: Any, params: Any, verbose: bool = True) -> Any:
        params.n_seq_max, params.kv_unified = n_seq, False
        return original(model=model, params=params, verbose=verbose)

    _internals.LlamaContext = parallel  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        _internals.LlamaContext = original  # type: ignore[misc]


class Worker:
    def __init__(self, out: IO[bytes], inbox: queue.SimpleQueue[dict[str, Any]],
                 cancels: set[int]) -> None:
        self.out = out
        self.inbox = inbox
        self.cancels = cancels
        self.llm: Any = None
        self.gen: Any = None  # the generate module, and its Generator once loaded
        self.generator: Any = None
        # Received, not yet running, in arrival order: ("native", job, reuse) or
        # ("high-level", command, None).
        self.waiting: collections.deque[tuple[str, Any, Any]] = collections.deque()
        self.jobs: dict[int, Any] = {}  # request id -> its running native job
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.current: int | None = None  # the request on the high-level path
        self.first_token_at = self.last_token_at = 0.0

    def send(self, event: dict[str, Any]) -> None:
        self.out.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    # -- the scheduler ------------------------------------------------------------------

    def run(self) -> None:
        handlers = {"load": self.load, "chat": self.receive}
        while True:
            busy = bool(self.jobs or self.waiting)
            try:
                command = self.inbox.get() if not busy else self.inbox.get_nowait()
            except queue.Empty:
                command = None
            while command is not None:
                handlers[command["op"]](command)
                try:
                    command = self.inbox.get_nowait()
                except queue.Empty:
                    command = None
            self.apply_cancels()
            self.admit()
            if self.jobs:
                self.step()

    def receive(self, command: dict[str, Any]) -> None:
        rid = command["id"]
        if self.llm is None:
            self.send({"ev": "error", "id": rid, "message": "no model loaded"})
            return
        self.send({"ev": "begin", "id": rid})
        params = command["params"]
        if not (command.get("loop", "native") == "native" and self.generator.handles(params)):
            self.waiting.append(("high-level", command, None))
            return
        try:
            job = self.generator.prepare(rid, params, self.emitter(rid))
        except Exception as exc:  # this request's fault: the others go on
            self.fail(rid, exc)
            return
        # A caller asking for repeatable output gets a clean context, as on the
        # high-level path: cached and recomputed KV entries differ in the last bits.
        reuse = command.get("reuse", True) and params.get("seed") is None
        self.waiting.append(("native", job, reuse))

    def emitter(self, rid: int) -> Any:
        # The role goes with the first text, as on the high-level path: nothing reaches
        # the caller before the prompt is evaluated, so a prompt too long for the context
        # is still an error before the first token (a 400, not a broken stream).
        started = False

        def emit(text: str | None) -> None:
            nonlocal started
            if not started:
                started = True
                self.send({"ev": "delta", "id": rid, "d": {"role": "assistant"}})
            if text is not None:
                self.send({"ev": "delta", "id": rid, "d": {"content": text}})

        return emit

    def apply_cancels(self) -> None:
        if not self.cancels:
            return
        for rid in list(self.cancels):
            self.cancels.discard(rid)
            job = self.jobs.pop(rid, None)
            if job is not None:
                self.generator.drop(job)
                self.end_native(job, cancelled=True)
                continue
            for entry in list(self.waiting):
                kind, item, _ = entry
                if (item.key if kind == "native" else item["id"]) == rid:
                    self.waiting.remove(entry)
                    if kind == "native":
                        self.generator.discard(item)
                    self.send({"ev": "end", "id": rid, "finish": None, "cancelled": True,
                               "loop": kind, "decode_s": 0.0,
                               "usage": {"prompt_tokens": 0, "completion_tokens": 0}})

    def admit(self) -> None:
        while self.waiting:
            kind, item, reuse = self.waiting[0]
            if kind == "high-level":
                if self.jobs:
                    return  # it needs the context to itself: later arrivals wait too
                self.waiting.popleft()
                self.chat_high_level(item)
                self.apply_cancels()  # those that came in meanwhile
                continue
            if not self.generator.has_room:
                return
            self.waiting.popleft()
            self.generator.admit(item, reuse=reuse)
            self.jobs[item.key] = item

    def step(self) -> None:
        try:
            finished = self.generator.step()
        except Exception as exc:  # the engine itself failed: every running request
            for rid, job in list(self.jobs.items()):
                self.generator.drop(job)
                self.fail(rid, exc)
            self.jobs.clear()
            return
        for job in finished:
            del self.jobs[job.key]
            self.end_native(job, cancelled=False)

    def end_native(self, job: Any, *, cancelled: bool) -> None:
        outcome = job.outcome
        job.emit(None)
        self.send({"ev": "end", "id": job.key, "finish": None if cancelled else outcome.finish,
                   "cancelled": cancelled, "loop": "native",
                   "decode_s": outcome.last_token_at - outcome.first_token_at,
                   "reused_tokens": outcome.reused_tokens,
                   "prefill_s": outcome.timings.get("prefill_s", 0.0),
                   "usage": {"prompt_tokens": outcome.prompt_tokens,
                             "completion_tokens": outcome.completion_tokens}})

    def fail(self, rid: int, exc: Exception) -> None:
        event: dict[str, Any] = {"ev": "error", "id": rid,
                                 "message": str(exc) or type(exc).__name__}
        if isinstance(exc, self.gen.PromptTooLong):
            event.update(kind="context_length", tokens=exc.tokens, limit=exc.limit)
        else:
            too_long = CONTEXT_EXCEEDED.search(str(exc))
            if too_long:  # the caller's prompt, not an engine failure (the message
                # names the whole cache; the limit is one sequence's part of it)
                event.update(kind="context_length", tokens=int(too_long[1]),
                             limit=self.generator.n_ctx)
        self.send(event)

    # -- loading ------------------------------------------------------------------------

    def load(self, command: dict[str, Any]) -> None:
        import llama_cpp
        from llama_cpp import Llama

        started = time.perf_counter()
        error: Exception | None = None
        gen = load_generate()
        compute = gen.system_info()
        # Offload only where this build can (Metal, CUDA, Vulkan...): elsewhere the
        # setting is honoured by reporting it, and every layer stays on the CPU.
        wanted = int(command.get("gpu_layers", -1))
        layers = wanted if compute["gpu_offload_supported"] else 0
        n_seq = max(1, int(command.get("parallel", 1)))
        compute.update(threads=command["n_threads"], gpu_layers_requested=wanted,
                       gpu_layers=layers, parallel=n_seq)
        # The KV cache holds n_ctx per sequence, so each request keeps the whole context
        # length it had alone, however many run at once (memory: n_seq times one).
        parallel = sequences(n_seq) if n_seq > 1 else contextlib.nullcontext()
        # Flash attention first, as llama.cpp's own default ("auto") does on CPU, where
        # it decodes ~10% faster; a model that cannot use it gets a plain context.
        for flash_attn in (True, False):
            try:
                with parallel:
                    self.llm = Llama(model_path=command["path"],
                                     n_ctx=command["n_ctx"] * n_seq,
                                     n_threads=command["n_threads"],
                                     n_threads_batch=command["n_threads"],
                                     flash_attn=flash_attn, n_gpu_layers=layers,
                                     verbose=command.get("verbose", False))
                break
            except Exception as exc:  # llama-cpp-python raises ValueError on a failed load
                error = exc
        if self.llm is None:
            self.send({"ev": "error", "id": None, "message": str(error) or type(error).__name__})
            return
        self._count_tokens()
        self.llm._n_ctx = command["n_ctx"]  # the high-level path's limit: one sequence's part
        self.gen = gen
        self.generator = gen.Generator(self.llm, n_seq=n_seq, n_ctx=command["n_ctx"])
        compute["model_layers"] = llama_cpp.llama_model_n_layer(self.llm._model.model)
        self.send({"ev": "loaded", "load_s": time.perf_counter() - started,
                   "n_ctx": self.generator.n_ctx, "compute": compute})

    def _count_tokens(self) -> None:
        # Streamed chat chunks carry no usage; count what generate() sees instead. The
        # instance attribute shadows the method for this one object only.
        import llama_cpp

        generate = self.llm.generate
        vocab = self.llm._model.vocab

        def counting(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            self.prompt_tokens = len(tokens)
            for token in generate(tokens, *args, **kwargs):
                if self.current in self.cancels:
                    return  # checked per token: text chunks may lag behind tokens
                if not llama_cpp.llama_vocab_is_eog(vocab, token):
                    self.completion_tokens += 1
                    self.last_token_at = time.perf_counter()
                    self.first_token_at = self.first_token_at or self.last_token_at
                yield token

        self.llm.generate = counting

    # -- the high-level path ----------------------------------------------------------------

    def chat_high_level(self, command: dict[str, Any]) -> None:
        """llama-cpp-python's create_chat_completion, alone on the context."""
        rid = command["id"]
        self.prompt_tokens = self.completion_tokens = 0
        self.first_token_at = self.last_token_at = 0.0
        self.current = rid
        self.generator.forget()  # the high-level path rewrites the KV cache its own way
        finish: str | None = None
        tools_seen: set[int] = set()
        if command["params"].get("seed") is not None:
            # Reusing the cached prompt prefix changes the sampled text, so a caller
            # asking for repeatable output gets a clean context.
            self.llm.reset()
        try:
            stream = self.llm.create_chat_completion(stream=True, **command["params"])
            for chunk in stream:
                if rid in self.cancels:
                    stream.close()  # stops generation between two tokens
                    break
                choice = chunk["choices"][0]
                delta = openai_delta(choice["delta"], tools_seen)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if delta:
                    self.send({"ev": "delta", "id": rid, "d": delta})
        except Exception as exc:
            self.fail(rid, exc)
            return
        finally:
            self.current = None
            self.generator.forget()  # our loop must not trust what it left behind
        cancelled = rid in self.cancels
        self.cancels.discard(rid)
        self.send({"ev": "end", "id": rid, "finish": None if cancelled else finish,
                   "cancelled": cancelled, "loop": "high-level",
                   "decode_s": self.last_token_at - self.first_token_at,
                   "usage": {"prompt_tokens": self.prompt_tokens,
                             "completion_tokens": self.completion_tokens}})


def openai_delta(delta: dict[str, Any], tools_seen: set[int]) -> dict[str, Any]:
    """llama-cpp-python repeats a tool call's id and name in every delta and adds the
    legacy ``function_call``; OpenAI streams send them once, then argument pieces."""
    out = {k: v for k, v in delta.items() if v is not None and k != "function_call"}
    calls = []
    for call in out.get("tool_calls") or []:
        index = call.get("index", 0)
        if index in tools_seen:
            call = {"index": index, "function": {"arguments": call["function"]["arguments"]}}
        tools_seen.add(index)
        calls.append(call)
    if calls:
        out["tool_calls"] = calls
    return out


def main() -> None:
    # Keep the protocol on a private copy of stdout, and point fd 1 at stderr so that
    # anything llama.cpp or a library prints cannot corrupt it.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    cancels: set[int] = set()
    inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    threading.Thread(target=read_commands, args=(sys.stdin.buffer, inbox, cancels),
                     daemon=True).start()
    worker = Worker(out, inbox, cancels)
    started = time.perf_counter()
    import llama_cpp  # noqa: F401  - the slow part of start-up, done once

    worker.send({"ev": "started", "import_s": time.perf_counter() - started})
    worker.run()


if __name__ == "__main__":
    main()
