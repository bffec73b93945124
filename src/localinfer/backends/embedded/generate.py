"""Our own generation loop over llama-cpp-python's low-level (ctypes) API, inside the
worker process: several chat requests decoded together, one sequence id each.

Why not ``Llama.create_chat_completion``: per token it copies the whole logits row
(49k floats for SmolLM2) into numpy, runs ``logit_bias`` as a Python logits
processor, and detokenises through several layers of Python; at 120 tokens/s that is
~7-10% of the time. Here a token costs its share of one ``llama_decode``, one
``llama_sampler_sample`` (the native chain: penalties, logit bias, grammar, top-k,
typical, top-p, min-p, temperature, dist, or greedy) and one
``llama_token_to_piece``, plus stop-string and UTF-8 bookkeeping on short strings.

The sampler chain and its defaults are the ones llama-cpp-python's chat completion
builds, in the same order, so greedy output is the same text token for token (tested).

Several requests at once, as ``llama-server -np N`` does: the context holds N sequences
each in its own part of the KV cache; each ``step`` decodes one batch made of every
generating request's next token plus prompt chunks of requests still reading their
prompt (dealt round-robin, and capped while others generate, so a long prompt does not
stall running streams). Each request has its own sampler chain, stop strings and token
budget. A request's greedy text is the same as when it runs alone (tested): its rows
in a batch compute as they would alone, and its cells sit where they would alone.

Prompt prefix reuse: each sequence remembers the tokens its KV cache holds; a new
request takes the free sequence sharing the longest prefix with its prompt and decodes
only the rest (a chat growing turn by turn re-reads only the last turn).

Loaded by path by worker.py (no ``localinfer`` import: start-up time), so it uses only
the standard library and ``llama_cpp``.
"""

from __future__ import annotations

import codecs
import ctypes
import itertools
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
PENALTY_LAST_N: Final = 64
# Prompt tokens per step while other requests are generating: a step's time grows with
# its tokens, and every running stream waits for the step. 128 keeps their per-token
# delay to a few decode steps' worth while a new prompt is read.
PREFILL_WHILE_DECODING: Final = 128  # Llama(last_n_tokens_size=64)
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


@dataclass
class Sequence:
    """One sequence id of the context and the tokens its KV cache entries hold."""

    sid: int
    cached: list[int] = field(default_factory=list)
    used_at: int = 0  # admission counter: the least recently used free sequence goes first


@dataclass
class Job:
    """One chat request on our loop, from its prompt to its finish."""

    key: Any  # the caller's name for it (the worker's request id)
    tokens: list[int]  # the prompt
    sampler: Any
    stops: list[str]
    max_tokens: int
    emit: Callable[[str], None]
    outcome: Outcome
    seq: Sequence | None = None
    read: int = 0  # prompt tokens in the KV cache so far
    next_token: int | None = None  # sampled, to be decoded in the next step
    produced: int = 0
    admitted_at: float = 0.0
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    scanner: StopScanner | None = None

    @property
    def prefilling(self) -> bool:
        return self.read < len(self.tokens)


class Generator:
    """One model, one context, up to ``n_seq`` sequences decoded together."""

    def __init__(self, llm: Any, *, n_seq: int = 1, n_ctx: int | None = None) -> None:
        self.llm = llm
        self.ctx = llm._ctx.ctx
        self.vocab = llm._model.vocab
        self.n_ctx: int = n_ctx or llm.n_ctx()  # per request (the pool holds n_seq of these)
        self.n_batch: int = llm.n_batch
        self.n_vocab: int = C.llama_vocab_n_tokens(self.vocab)
        self.memory = C.llama_get_memory(self.ctx)
        self.free = [Sequence(sid) for sid in range(n_seq)]
        self.active: list[Job] = []
        self._admissions = itertools.count(1)
        self._turn = 0  # round-robin start among prompts being read
        self._batch = C.llama_batch_init(self.n_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(256)
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

    @property
    def has_room(self) -> bool:
        return bool(self.free)

    def forget(self) -> None:
        """Another user of the context (the high-level path, on sequence 0, trimming every
        sequence past its own prefix) changes it: no sequence's cache record holds any
        more (call only with nothing active). The cache itself is left to it: its own
        prefix reuse goes on between its requests."""
        for seq in self.free:
            seq.cached = []

    # -- requests ---------------------------------------------------------------------

    def prepare(self, key: Any, params: dict[str, Any], emit: Callable[[str], None]) -> Job:
        """A job for ``params`` (PromptTooLong, or whatever a bad request raises, here:
        before it touches the context)."""
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
        sampler = self._sampler(params)
        return Job(key, tokens, sampler, stops, max_tokens, emit,
                   Outcome(prompt_tokens=len(tokens)), scanner=StopScanner(stops))

    def admit(self, job: Job, *, reuse: bool) -> None:
        """Give ``job`` a free sequence (the one sharing the longest prefix with its
        prompt, when ``reuse``), keeping that prefix in the KV cache."""
        self.llm.n_tokens = 0  # the high-level path must not trust its own cache record
        tokens = job.tokens
        best, keep = min(self.free, key=lambda s: s.used_at), 0
        if reuse:
            for seq in self.free:
                common = 0
                for a, b in zip(seq.cached, tokens, strict=False):
                    if a != b:
                        break
                    common += 1
                common = min(common, len(tokens) - 1)  # one token decoded, for logits
                if common > keep:
                    best, keep = seq, common
        self.free.remove(best)
        if not C.llama_memory_seq_rm(self.memory, best.sid, keep, -1):
            C.llama_memory_seq_rm(self.memory, best.sid, -1, -1)
            keep = 0
        best.cached = tokens[:keep]
        best.used_at = next(self._admissions)
        job.seq, job.read = best, keep
        job.outcome.reused_tokens = keep
        job.admitted_at = time.perf_counter()
        self.active.append(job)

    def drop(self, job: Job) -> None:
        """Cancel: the job's sequence is emptied and free at once."""
        if job.seq is not None:
            C.llama_memory_seq_rm(self.memory, job.seq.sid, -1, -1)
            job.seq.cached = []
        self._release(job)

    def _release(self, job: Job) -> None:
        if job in self.active:
            self.active.remove(job)
        if job.seq is not None and job.seq not in self.free:
            self.free.append(job.seq)
        if job.sampler is not None:
            C.llama_sampler_free(job.sampler)
            job.sampler = None

    def discard(self, job: Job) -> None:
        """A job that was prepared but never admitted."""
        self._release(job)

    # -- one step ---------------------------------------------------------------------

    def step(self) -> list[Job]:
        """Decode one batch for every active job; returns the jobs that finished."""
        batch, n = self._batch, 0
        outputs: list[tuple[Job, int]] = []

        def add(token: int, job: Job, logits: bool) -> None:
            nonlocal n
            assert job.seq is not None
            batch.token[n] = token
            batch.pos[n] = len(job.seq.cached)
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = job.seq.sid
            batch.logits[n] = logits
            job.seq.cached.append(token)
            if logits:
                outputs.append((job, n))
            n += 1

        for job in self.active:
            if job.next_token is not None:
                add(job.next_token, job, True)
                job.next_token = None
        reading = [job for job in self.active if job.prefilling]
        budget = self.n_batch - n
        if n:
            budget = min(budget, PREFILL_WHILE_DECODING)
        if reading:
            self._turn = (self._turn + 1) % len(reading)
            order = reading[self._turn:] + reading[:self._turn]
            for i, job in enumerate(order):
                share = -(-budget // (len(order) - i))  # the rest, split evenly
                take = min(share, len(job.tokens) - job.read)
                for token in job.tokens[job.read:job.read + take]:
                    job.read += 1
                    add(token, job, not job.prefilling)
                budget -= take
        if n == 0:
            return []
        batch.n_tokens = n
        code = C.llama_decode(self.ctx, batch)
        if code != 0:
            for job in self.active:  # whatever the cache holds now, we no longer know it
                assert job.seq is not None
                job.seq.cached = []
            raise RuntimeError(f"llama_decode failed ({code})")
        finished = []
        for job, index in outputs:
            if job.produced == 0:
                job.outcome.timings["prefill_s"] = time.perf_counter() - job.admitted_at
            if self._sample(job, index):
                finished.append(job)
                self._finish(job)
        return finished

    def _sample(self, job: Job, index: int) -> bool:
        """Sample the job's next token from row ``index``; True when the job is done."""
        scanner = job.scanner
        assert scanner is not None
        outcome = job.outcome
        token = C.llama_sampler_sample(job.sampler, self.ctx, index)
        if C.llama_vocab_is_eog(self.vocab, token):
            outcome.finish = "stop"
            return True
        job.produced += 1
        outcome.completion_tokens = job.produced
        outcome.last_token_at = time.perf_counter()
        outcome.first_token_at = outcome.first_token_at or outcome.last_token_at
        n = C.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, False)
        chunk = job.decoder.decode(self._piece.raw[:n]) if n > 0 else ""
        if chunk:
            out, hit = scanner.feed(chunk)
            if out:
                job.emit(out)
            if hit:
                outcome.finish = "stop"
                job.scanner = None  # what it held back is not text: nothing to flush
                return True
        if job.produced >= job.max_tokens:
            outcome.finish = "length"
            return True
        job.next_token = token
        return False

    def _finish(self, job: Job) -> None:
        if job.scanner is not None:
            tail = job.scanner.flush(job.decoder.decode(b"", final=True))
            if tail:
                job.emit(tail)
        self._release(job)  # its cache stays: the next turn of that chat may reuse it

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
