"""Our own generation loop over llama-cpp-python's low-level (ctypes) API, inside the
worker process.

Why not ``Llama.create_chat_completion``: per token it copies the whole logits row
(49k floats for SmolLM2) into numpy, runs ``logit_bias`` as a Python logits
processor, and detokenises through several layers of Python; at 120 tokens/s that is
~7-10% of the time. Here a token costs one ``llama_decode``, one
``llama_sampler_sample`` (the native chain: penalties, logit bias, grammar, top-k,
typical, top-p, min-p, temperature, dist, or greedy) and one
``llama_token_to_piece``, plus stop-string and UTF-8 bookkeeping on short strings.

The sampler chain and its defaults are the ones llama-cpp-python's chat completion
builds, in the same order, so greedy output is the same text token for token (tested).

Prompt prefix reuse: the tokens in the KV cache are remembered; the next prompt keeps
the longest common prefix and only its new suffix is decoded (a chat growing turn by
turn re-reads only the last turn).

Loaded by path by worker.py (no ``localinfer`` import: start-up time), so it uses only
the standard library and ``llama_cpp``.
"""

from __future__ import annotations

import codecs
import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import llama_cpp
from llama_cpp import llama_chat_format
from llama_cpp import llama_cpp as C

# Llama.create_chat_completion's defaults, so a request means the same on both paths.
DEFAULTS: Final[dict[str, Any]] = {
    "temperature": 0.2, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "typical_p": 1.0,
    "repeat_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
    "mirostat_mode": 0, "mirostat_tau": 5.0, "mirostat_eta": 0.1,
}
PENALTY_LAST_N: Final = 64  # Llama(last_n_tokens_size=64)
# Request keys this loop honours; a request with any other key (tools) takes the
# high-level path.
HANDLED: Final = frozenset(DEFAULTS) | {"messages", "max_tokens", "stop", "seed",
                                        "logit_bias", "response_format"}


class PromptTooLong(Exception):
    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"Requested tokens ({tokens}) exceed context window of {limit}")
        self.tokens, self.limit = tokens, limit


@dataclass
class Outcome:
    finish: str | None = None  # "stop", "length", or None when cancelled
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose KV cache entries were kept
    first_token_at: float = 0.0
    last_token_at: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class Generator:
    """One model, one context, one sequence: chat requests decoded by our own loop."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.ctx = llm._ctx.ctx
        self.vocab = llm._model.vocab
        self.n_ctx: int = llm.n_ctx()
        self.n_batch: int = llm.n_batch
        self.n_vocab: int = C.llama_vocab_n_tokens(self.vocab)
        self.memory = C.llama_get_memory(self.ctx)
        self.cached: list[int] = []  # the tokens whose entries the KV cache holds, in order
        self._piece = ctypes.create_string_buffer(256)
        self._one = (C.llama_token * 1)()
        self.formatter = self._formatter()

    def _formatter(self) -> Any:
        """The GGUF's own chat template, as llama-cpp-python formats it (None when the
        model has none: those requests take the high-level path)."""
        template = self.llm.metadata.get("tokenizer.chat_template")
        if template is None or not str(self.llm.chat_format).startswith("chat_template."):
            return None
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=self.llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=self.llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos])

    def handles(self, params: dict[str, Any]) -> bool:
        return self.formatter is not None and set(params) <= HANDLED

    def forget(self) -> None:
        """Another user of the context (the high-level path) is about to change it."""
        self.cached = []

    # -- one request ------------------------------------------------------------------

    def chat(self, params: dict[str, Any], emit: Callable[[str], None],
             cancelled: Callable[[], bool], *, reuse: bool = True) -> Outcome:
        formatted = self.formatter(messages=params["messages"])
        tokens: list[int] = self.llm.tokenize(formatted.prompt.encode("utf-8"),
                                              add_bos=not formatted.added_special,
                                              special=True)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLong(len(tokens), self.n_ctx)
        stop = params.get("stop") or []
        stops = [s for s in ([stop] if isinstance(stop, str) else list(stop))
                 + list(formatted.stop or []) if s]
        room = self.n_ctx - len(tokens)
        max_tokens = params.get("max_tokens") or 0
        max_tokens = room if max_tokens <= 0 else min(max_tokens, room)
        outcome = Outcome(prompt_tokens=len(tokens))
        started = time.perf_counter()
        outcome.reused_tokens = self._prefill(tokens, reuse=reuse)
        outcome.timings["prefill_s"] = time.perf_counter() - started
        sampler = self._sampler(params)
        try:
            self._loop(sampler, max_tokens, stops, emit, cancelled, outcome)
        finally:
            C.llama_sampler_free(sampler)
        return outcome

    def _prefill(self, tokens: list[int], *, reuse: bool) -> int:
        """Bring the KV cache to ``tokens[:-1]`` kept or decoded, ``tokens[-1]`` decoded
        (its logits are the first sample's). Returns how many tokens were kept."""
        self.llm.n_tokens = 0  # the high-level path must not trust its own cache record
        keep = 0
        if reuse:
            for a, b in zip(self.cached, tokens, strict=False):
                if a != b:
                    break
                keep += 1
            keep = min(keep, len(tokens) - 1)  # at least one token decoded, for logits
        if keep == 0 or not C.llama_memory_seq_rm(self.memory, -1, keep, -1):
            C.llama_memory_clear(self.memory, True)
            keep = 0
        self.cached = tokens[:keep]
        for start in range(keep, len(tokens), self.n_batch):
            self._decode(tokens[start:start + self.n_batch])
        return keep

    def _decode(self, tokens: list[int]) -> None:
        if len(tokens) == 1:
            self._one[0] = tokens[0]
            array: Any = self._one
        else:
            array = (C.llama_token * len(tokens))(*tokens)
        code = C.llama_decode(self.ctx, C.llama_batch_get_one(array, len(tokens)))
        if code != 0:
            self.cached = []  # whatever the cache holds now, we no longer know it
            raise RuntimeError(f"llama_decode failed ({code})")
        self.cached.extend(tokens)

    def _loop(self, sampler: Any, max_tokens: int, stops: list[str],
              emit: Callable[[str], None], cancelled: Callable[[], bool],
              outcome: Outcome) -> None:
        ctx, vocab, piece, size = self.ctx, self.vocab, self._piece, len(self._piece)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text = StopScanner(stops)
        produced = 0
        while True:
            if cancelled():
                return
            token = C.llama_sampler_sample(sampler, ctx, -1)
            if C.llama_vocab_is_eog(vocab, token):
                outcome.finish = "stop"
                break
            produced += 1
            outcome.completion_tokens = produced
            outcome.last_token_at = time.perf_counter()
            outcome.first_token_at = outcome.first_token_at or outcome.last_token_at
            n = C.llama_token_to_piece(vocab, token, piece, size, 0, False)
            chunk = decoder.decode(piece.raw[:n]) if n > 0 else ""
            if chunk:
                out, hit = text.feed(chunk)
                if out:
                    emit(out)
                if hit:
                    outcome.finish = "stop"
                    return
            if produced >= max_tokens:
                outcome.finish = "length"
                break
            self._decode([token])
        tail = text.flush(decoder.decode(b"", final=True))
        if tail:
            emit(tail)

    def _sampler(self, params: dict[str, Any]) -> Any:
        """The chain llama-cpp-python's ``Llama._init_sampler`` builds, natively."""
        p = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
        seed = params.get("seed")
        seed = C.LLAMA_DEFAULT_SEED if seed is None else int(seed) & 0xFFFFFFFF
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            C.llama_sampler_chain_add(chain, sampler)

        bias = {int(k): float(v) for k, v in (params.get("logit_bias") or {}).items()}
        if bias:
            entries = (C.llama_logit_bias * len(bias))(
                *(C.llama_logit_bias(token=t, bias=b) for t, b in bias.items()))
            add(C.llama_sampler_init_logit_bias(self.n_vocab, len(bias), entries))
        add(C.llama_sampler_init_penalties(self.n_vocab, PENALTY_LAST_N, p["repeat_penalty"],
                                           p["frequency_penalty"], p["presence_penalty"]))
        grammar = _grammar(params.get("response_format"))
        if grammar is not None:
            add(C.llama_sampler_init_grammar(self.vocab, grammar._grammar.encode("utf-8"),
                                             grammar._root.encode("utf-8")))
        temp = float(p["temperature"])
        if temp < 0.0:
            add(C.llama_sampler_init_dist(seed))
        elif temp == 0.0:
            add(C.llama_sampler_init_greedy())
        elif p["mirostat_mode"] == 1:
            add(C.llama_sampler_init_mirostat(self.n_vocab, seed, p["mirostat_tau"],
                                              p["mirostat_eta"], 100))
        elif p["mirostat_mode"] == 2:
            add(C.llama_sampler_init_mirostat_v2(seed, p["mirostat_tau"], p["mirostat_eta"]))
        else:
            add(C.llama_sampler_init_top_k(int(p["top_k"])))
            add(C.llama_sampler_init_typical(p["typical_p"], 1))
            add(C.llama_sampler_init_top_p(p["top_p"], 1))
            add(C.llama_sampler_init_min_p(p["min_p"], 1))
            add(C.llama_sampler_init_temp(temp))
            add(C.llama_sampler_init_dist(seed))
        return chain


def _grammar(response_format: dict[str, Any] | None) -> Any:
    if not response_format or response_format.get("type") != "json_object":
        return None
    return llama_chat_format._grammar_for_response_format(response_format)  # type: ignore[arg-type]


class StopScanner:
    """Streamed text with stop strings: text that could be the start of a stop string is
    held back until the next piece shows whether it is one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.pending = ""

    def feed(self, chunk: str) -> tuple[str, bool]:
        """(text safe to emit now, whether a stop string was reached)."""
        if not self.stops:
            return chunk, False
        pending = self.pending + chunk
        cut = min((i for i in (pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.pending = ""
            return pending[:cut], True
        hold = max((k for s in self.stops for k in range(min(len(s) - 1, len(pending)), 0, -1)
                    if pending.endswith(s[:k])), default=0)
        self.pending = pending[len(pending) - hold:] if hold else ""
        return pending[:len(pending) - hold], False

    def flush(self, chunk: str) -> str:
        out, hit = self.feed(chunk)
        rest, self.pending = ("" if hit else self.pending), ""
        return out + rest


def system_info() -> dict[str, Any]:
    """What the engine computes with: CPU features llama.cpp was built for and found,
    and whether this build can offload layers to a GPU."""
    info = C.llama_print_system_info().decode("utf-8", "replace")
    # "CPU : SSE3 = 1 | AVX2 = 1 | ... |": the names switched on
    features = [part.split("=")[0].split(":")[-1].strip() for part in info.split("|")
                if part.strip().endswith("= 1")]
    return {"system_info": info.strip(), "cpu_features": features,
            "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload())}


if __name__ == "__main__":  # `python -P generate.py`: the parent's compute probe (status)
    import json
    import sys

    sys.stdout.write(json.dumps(system_info()) + "\n")
