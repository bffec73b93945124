"""The embedded engine's worker process: llama.cpp (via llama-cpp-python), one model,
one request at a time, commands in on stdin, events out on a private pipe.

Run as a script by path (``python .../worker.py``), not as ``-m localinfer...``: that
would import the localinfer package and its dependencies, and the worker's start-up
time is the embedded tier's cold time to first token. So this file uses only the
standard library and imports ``llama_cpp`` itself.

Protocol, one JSON object per line:

    parent -> worker (stdin)
      {"op": "load", "path": str, "n_ctx": int, "n_threads": int, "verbose": bool,
       "gpu_layers": int}                       -1 = all; used only where offload exists
      {"op": "chat", "id": int, "params": {...create_chat_completion kwargs...},
       "loop": "native"|"high-level", "reuse": bool}   which generation loop (default
                                        native where it handles the request), and whether
                                        the KV cache of a shared prompt prefix is kept
      {"op": "cancel", "id": int}          stop that request between two tokens
    worker -> parent (the original stdout, kept apart from fd 1)
      {"ev": "started", "import_s": float}                    llama_cpp imported
      {"ev": "loaded", "load_s": float, "n_ctx": int, "compute": {...}}
      {"ev": "begin", "id": int}                              a chat request started
      {"ev": "delta", "id": int, "d": {...}}                  one streamed delta
      {"ev": "end", "id": int, "finish": str|null, "usage": {...}, "cancelled": bool,
       "decode_s": float, "loop": str,             first to last generated token
       "reused_tokens": int, "prefill_s": float}   (native loop) prompt cache reuse
      {"ev": "error", "id": int|null, "message": str}         request or load failed
       (+ "kind": "context_length", "tokens", "limit" when the prompt does not fit)

stdin closing means the parent is gone: the worker exits at once.
"""

from __future__ import annotations

import os
import sys

# Run by path, Python puts this package's directory first on sys.path, where our
# sibling modules (backend, params, process) could shadow a library's imports.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

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


class Cancels:
    """The request id the parent asked to stop; read by the generating thread between
    tokens (a plain attribute: assignment is atomic under the GIL)."""

    def __init__(self) -> None:
        self.id: int | None = None


def read_commands(stdin: IO[bytes], inbox: queue.SimpleQueue[dict[str, Any]],
                  cancels: Cancels) -> None:
    for line in stdin:
        command = json.loads(line)
        if command.get("op") == "cancel":
            cancels.id = command.get("id")
        else:
            inbox.put(command)
    os._exit(0)  # the parent closed our stdin: it is gone or done with us


class Worker:
    def __init__(self, out: IO[bytes], cancels: Cancels) -> None:
        self.out = out
        self.cancels = cancels
        self.llm: Any = None
        self.gen: Any = None  # the generate module, and its Generator once loaded
        self.generator: Any = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.current: int | None = None  # the request being generated
        self.first_token_at = self.last_token_at = 0.0

    def send(self, event: dict[str, Any]) -> None:
        self.out.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

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
        compute.update(threads=command["n_threads"], gpu_layers_requested=wanted,
                       gpu_layers=layers)
        # Flash attention first, as llama.cpp's own default ("auto") does on CPU, where
        # it decodes ~10% faster; a model that cannot use it gets a plain context.
        for flash_attn in (True, False):
            try:
                self.llm = Llama(model_path=command["path"], n_ctx=command["n_ctx"],
                                 n_threads=command["n_threads"],
                                 n_threads_batch=command["n_threads"], flash_attn=flash_attn,
                                 n_gpu_layers=layers, verbose=command.get("verbose", False))
                break
            except Exception as exc:  # llama-cpp-python raises ValueError on a failed load
                error = exc
        if self.llm is None:
            self.send({"ev": "error", "id": None, "message": str(error) or type(error).__name__})
            return
        self._count_tokens()
        self.gen, self.generator = gen, gen.Generator(self.llm)
        compute["model_layers"] = llama_cpp.llama_model_n_layer(self.llm._model.model)
        self.send({"ev": "loaded", "load_s": time.perf_counter() - started,
                   "n_ctx": self.llm.n_ctx(), "compute": compute})

    def _count_tokens(self) -> None:
        # Streamed chat chunks carry no usage; count what generate() sees instead. The
        # instance attribute shadows the method for this one object only.
        import llama_cpp

        generate = self.llm.generate
        vocab = self.llm._model.vocab

        def counting(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            self.prompt_tokens = len(tokens)
            for token in generate(tokens, *args, **kwargs):
                if self.cancels.id is not None and self.cancels.id == self.current:
                    return  # checked per token: text chunks may lag behind tokens
                if not llama_cpp.llama_vocab_is_eog(vocab, token):
                    self.completion_tokens += 1
                    self.last_token_at = time.perf_counter()
                    self.first_token_at = self.first_token_at or self.last_token_at
                yield token

        self.llm.generate = counting

    def chat(self, command: dict[str, Any]) -> None:
        rid = command["id"]
        if self.llm is None:
            self.send({"ev": "error", "id": rid, "message": "no model loaded"})
            return
        self.send({"ev": "begin", "id": rid})
        self.prompt_tokens = self.completion_tokens = 0
        self.first_token_at = self.last_token_at = 0.0
        self.current = rid
        params = command["params"]
        if command.get("loop", "native") == "native" and self.generator.handles(params):
            self.chat_native(rid, params, reuse=command.get("reuse", True))
            return
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
                if self.cancels.id == rid:
                    stream.close()  # stops generation between two tokens
                    break
                choice = chunk["choices"][0]
                delta = openai_delta(choice["delta"], tools_seen)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if delta:
                    self.send({"ev": "delta", "id": rid, "d": delta})
        except Exception as exc:
            event: dict[str, Any] = {"ev": "error", "id": rid,
                                     "message": str(exc) or type(exc).__name__}
            too_long = CONTEXT_EXCEEDED.search(str(exc))
            if too_long:  # the caller's prompt, not an engine failure
                event.update(kind="context_length", tokens=int(too_long[1]),
                             limit=int(too_long[2]))
            self.send(event)
            return
        cancelled = self.cancels.id == rid
        self.send({"ev": "end", "id": rid, "finish": None if cancelled else finish,
                   "cancelled": cancelled, "loop": "high-level",
                   "decode_s": self.last_token_at - self.first_token_at,
                   "usage": {"prompt_tokens": self.prompt_tokens,
                             "completion_tokens": self.completion_tokens}})

    def chat_native(self, rid: int, params: dict[str, Any], *, reuse: bool) -> None:
        """Our own loop (generate.py): the same events as the high-level path."""
        gen = self.generator
        # The role goes with the first text, as on the high-level path: nothing reaches the
        # caller before the prompt is evaluated, so a prompt too long for the context is
        # still an error before the first token (a 400, not a broken stream).
        started = False

        def begin() -> None:
            nonlocal started
            if not started:
                started = True
                self.send({"ev": "delta", "id": rid, "d": {"role": "assistant"}})

        def emit(text: str) -> None:
            begin()
            self.send({"ev": "delta", "id": rid, "d": {"content": text}})

        def cancelled() -> bool:
            return self.cancels.id == rid

        # A caller asking for repeatable output gets a clean context, as on the
        # high-level path: cached and recomputed KV entries differ in the last bits.
        reuse = reuse and params.get("seed") is None
        try:
            outcome = gen.chat(params, emit, cancelled, reuse=reuse)
        except Exception as exc:
            event: dict[str, Any] = {"ev": "error", "id": rid,
                                     "message": str(exc) or type(exc).__name__}
            if isinstance(exc, self.gen.PromptTooLong):
                event.update(kind="context_length", tokens=exc.tokens, limit=exc.limit)
            self.send(event)
            return
        begin()
        self.send({"ev": "end", "id": rid, "finish": outcome.finish,
                   "cancelled": outcome.finish is None, "loop": "native",
                   "decode_s": outcome.last_token_at - outcome.first_token_at,
                   "reused_tokens": outcome.reused_tokens,
                   "prefill_s": outcome.timings["prefill_s"],
                   "usage": {"prompt_tokens": outcome.prompt_tokens,
                             "completion_tokens": outcome.completion_tokens}})


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
    cancels = Cancels()
    inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    threading.Thread(target=read_commands, args=(sys.stdin.buffer, inbox, cancels),
                     daemon=True).start()
    worker = Worker(out, cancels)
    started = time.perf_counter()
    import llama_cpp  # noqa: F401  - the slow part of start-up, done once

    worker.send({"ev": "started", "import_s": time.perf_counter() - started})
    handlers = {"load": worker.load, "chat": worker.chat}
    while True:
        command = inbox.get()
        handlers[command["op"]](command)


if __name__ == "__main__":
    main()
