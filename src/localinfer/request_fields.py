"""Which request fields reach an upstream, per dialect, as one table (issue 26 §1).

Every field of a request is one of: modelled (typed by the route's model, passed on),
an upstream extension on the short allow-list (``EXTENSIONS``: passed on), dropped as
documented (``DROPPED``: meaningless here, never sent), or refused with a 400 naming
it. A field in no row is refused too: nothing is forwarded blindly. Engine internals
(llama.cpp's ``n_probs``, ``n_discard``, ``id_slot``, ``grammar``, …) are refused with
the reason and the modelled field to use instead: through them one 170-byte request
grew llama-server to 21.9 GB, and ``n_discard`` reached CVE-2026-21869.

Bounds checked here, before anything reaches an upstream: ``top_logprobs`` ≤ 20
(OpenAI's limit), ``n`` ≤ ``max_choices``, and JSON schemas (``response_format``,
tool parameters) by size, enum values and nesting depth before a grammar is built from
them (a 20,000-value enum kept llama-server at 95 % CPU for 6 minutes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from .errors import UsageError

Dialect = Literal["chat", "completions", "ollama", "ollama_options", "responses"]


class FieldRefused(UsageError):
    """A request field localinfer does not pass upstream (or a value out of bounds)."""

    code = "unsupported_field"

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


# Engine internals, refused on every route with what to send instead.
ENGINE_FIELDS: Final[dict[str, str]] = {
    "n_probs": "use logprobs with top_logprobs (at most 20)",
    "n_discard": "context shifting is the engine's own business",
    "n_keep": "context shifting is the engine's own business",
    "id_slot": "slots are the engine's to assign",
    "slot_id": "slots are the engine's to assign",
    "lora": "adapters are chosen when the server starts",
    "grammar": "use response_format (json_object or json_schema)",
    "json_schema": "use response_format {type: json_schema}",
    "samplers": "use temperature, top_p, top_k, min_p",
    "ignore_eos": "use max_tokens to ask for a fixed length",
    "n_predict": "use max_tokens",
    "n_indent": "not supported",
    "t_max_predict_ms": "the gateway's request_deadline bounds every request",
    "t_max_prompt_ms": "the gateway's request_deadline bounds every request",
    "post_sampling_probs": "use logprobs with top_logprobs (at most 20)",
    "return_tokens": "not supported",
    "dynatemp_range": "use temperature", "dynatemp_exponent": "use temperature",
    "mirostat": "use temperature, top_p, top_k, min_p",
    "mirostat_tau": "use temperature, top_p, top_k, min_p",
    "mirostat_eta": "use temperature, top_p, top_k, min_p",
    "typical_p": "use top_p", "xtc_probability": "not supported",
    "xtc_threshold": "not supported", "dry_multiplier": "use repeat_penalty",
    "dry_base": "use repeat_penalty", "dry_allowed_length": "use repeat_penalty",
    "dry_penalty_last_n": "use repeat_penalty", "dry_sequence_breakers": "use repeat_penalty",
    "repeat_last_n": "use repeat_penalty", "penalty_last_n": "use repeat_penalty",
    "image_data": "send images as image_url content parts",
    "multimodal_data": "send images as image_url content parts",
    "chat_template_kwargs": "the chat template is the server's",
    "reasoning_format": "not supported",
}

# The allow-list of upstream extensions: sampling knobs llama.cpp, vLLM and Ollama share
# (Ollama's options map onto them) and llama.cpp's prompt cache switch. Passed on.
EXTENSIONS: Final[dict[str, tuple[type | tuple[type, ...], float, float]]] = {
    "cache_prompt": (bool, 0, 1),
    "top_k": (int, 0, 1000),
    "min_p": ((int, float), 0, 1),
    "repeat_penalty": ((int, float), 0, 10),
}

# Modelled fields per dialect beyond the route's own pydantic model (OpenAI's documented
# chat fields the router passes on as they are).
CHAT_PASSED: Final = frozenset({
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "n", "user", "parallel_tool_calls", "stream_options", "reasoning_effort",
})

# Documented drops: OpenAI account features with no meaning on this machine; never sent.
DROPPED: Final[dict[Dialect, frozenset[str]]] = {
    "chat": frozenset({"store", "metadata", "service_tier", "prompt_cache_key",
                       "safety_identifier"}),
    "completions": frozenset({"user"}),
    "responses": frozenset({"service_tier", "prompt_cache_key", "safety_identifier",
                            "stream_options"}),
    "ollama": frozenset({"keep_alive", "think"}),
    # Ollama's runner settings (its docs' Modelfile parameters): they tune Ollama's own
    # process and mean nothing to the backends here.
    "ollama_options": frozenset({
        "num_ctx", "num_gpu", "num_thread", "num_batch", "num_keep", "main_gpu",
        "use_mmap", "use_mlock", "numa", "low_vram", "vocab_only", "f16_kv", "logits_all",
        "embedding_only", "num_gqa", "rope_frequency_base", "rope_frequency_scale",
        "penalize_newline", "repeat_last_n", "tfs_z", "typical_p", "mirostat",
        "mirostat_tau", "mirostat_eta"}),
}

# Which named chat fields (not extensions) a dialect also passes when present as extras.
EXTRA_PASSED: Final[dict[Dialect, frozenset[str]]] = {
    "chat": CHAT_PASSED | frozenset(EXTENSIONS),
    "completions": frozenset(EXTENSIONS),
    "responses": frozenset(),
    "ollama": frozenset(),
    "ollama_options": frozenset(),
}

TOP_LOGPROBS_MAX: Final = 20
SCHEMA_MAX_BYTES: Final = 32 * 1024
SCHEMA_MAX_ENUM_VALUES: Final = 512
SCHEMA_MAX_DEPTH: Final = 64  # JSON levels (a schema level is about two)


def check_extras(dialect: Dialect, extra: Mapping[str, Any] | None, *,
                 prefix: str = "") -> dict[str, Any]:
    """The fields of ``extra`` (what the route's model did not type) to pass on;
    drops the documented ones, refuses the rest naming ``prefix + field``."""
    passed: dict[str, Any] = {}
    for name, value in (extra or {}).items():
        param = prefix + name
        if name in EXTRA_PASSED[dialect]:
            passed[name] = _check_extension(name, value, param) if name in EXTENSIONS \
                else value
        elif name in DROPPED[dialect]:
            continue
        elif name in ENGINE_FIELDS:
            raise FieldRefused(f"{param} is not passed to the engine: {ENGINE_FIELDS[name]}",
                               param=param)
        else:
            raise FieldRefused(f"{param} is not a field localinfer understands here; see "
                               "docs/gateway.md (request fields) for what is passed on",
                               param=param)
    return passed


def _integer(value: Any) -> int | None:
    """``value`` as an integer, or None: JSON has one number type, so 5.0 is as much an
    integer as 5 (JSON Schema and the routes' models agree); a boolean is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _check_extension(name: str, value: Any, param: str) -> Any:
    """The extension's value, checked (an integral float becomes an int)."""
    kind, low, high = EXTENSIONS[name]
    if kind is int and _integer(value) is not None:
        value = _integer(value)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok or (kind is not bool and not low <= value <= high):
        raise FieldRefused(f"{param} must be {_kind_name(kind)}"
                           + ("" if kind is bool else f" from {low:g} to {high:g}"), param=param)
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return "true or false" if kind is bool else "an integer" if kind is int else "a number"


# The types and bounds (OpenAI's) of the chat fields passed on as they are; null is
# absent. ``top_logprobs`` and ``n`` are bounded in check_chat.
NUMBER: Final = (int, float)
CHAT_TYPES: Final[dict[str, tuple[type | tuple[type, ...], float | None, float | None]]] = {
    "presence_penalty": (NUMBER, -2, 2), "frequency_penalty": (NUMBER, -2, 2),
    "logit_bias": (dict, None, None), "logprobs": (bool, None, None),
    "user": (str, None, None), "parallel_tool_calls": (bool, None, None),
    "stream_options": (dict, None, None), "reasoning_effort": (str, None, None),
}
LOGIT_BIAS_MAX: Final = 100


def check_chat(extra: Mapping[str, Any] | None, *, max_choices: int,
               response_format: Any = None, tools: Iterable[Any] | None = None
               ) -> dict[str, Any]:
    """The chat dialect's table and bounds: the one check the router makes for the
    library (``Client.chat(**options)``) and every gateway route alike. Returns the
    extras to pass on (documented drops removed, integral floats made integers)."""
    passed = check_extras("chat", extra)
    for name, value in passed.items():
        if name in CHAT_TYPES and value is not None:
            _check_chat_type(name, value)
    for name, low, high in (("top_logprobs", 0, TOP_LOGPROBS_MAX), ("n", 1, max_choices)):
        if passed.get(name) is None:
            continue
        number = _integer(passed[name])
        if number is None or not low <= number <= high:
            raise FieldRefused(f"{name} must be an integer from {low} to {high}"
                               + (" (max_choices)" if name == "n" else ""), param=name)
        passed[name] = number
    if isinstance(response_format, dict):
        inner = response_format.get("json_schema")
        schema = inner.get("schema") if isinstance(inner, dict) else response_format.get("schema")
        check_schema(schema, "response_format")
    for i, tool in enumerate(tools or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict):
            check_schema(function.get("parameters"), f"tools[{i}].function.parameters")
    return passed


def _check_chat_type(name: str, value: Any) -> None:
    kind, low, high = CHAT_TYPES[name]
    wrong = not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))
    if wrong or (low is not None and high is not None and not low <= value <= high):
        what = (f"a number from {low:g} to {high:g}" if kind is NUMBER
                else "true or false" if kind is bool else "a string" if kind is str
                else "an object")
        raise FieldRefused(f"{name} must be {what} (or null)", param=name)
    if name == "logit_bias" and any(
            not isinstance(b, NUMBER) or isinstance(b, bool)
            or not -LOGIT_BIAS_MAX <= b <= LOGIT_BIAS_MAX for b in value.values()):
        raise FieldRefused(f"logit_bias maps token ids to numbers from -{LOGIT_BIAS_MAX} to "
                           f"{LOGIT_BIAS_MAX}", param="logit_bias")
    if name == "stream_options" and not isinstance(value.get("include_usage", False), bool):
        raise FieldRefused("stream_options.include_usage must be true or false",
                           param="stream_options.include_usage")


def check_schema(schema: Any, param: str) -> None:
    """Refuse a JSON schema too big to turn into a grammar safely (before any is built)."""
    if schema is None:
        return
    size = len(json.dumps(schema, default=str))
    if size > SCHEMA_MAX_BYTES:
        raise FieldRefused(f"{param}: the JSON schema is {size} bytes; at most "
                           f"{SCHEMA_MAX_BYTES} are turned into a grammar", param=param)
    enums = depth = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, level = stack.pop()
        depth = max(depth, level)
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "enum" and isinstance(value, list):
                    enums += len(value)
                stack.append((value, level + 1))
        elif isinstance(node, list):
            stack.extend((item, level + 1) for item in node)
    if enums > SCHEMA_MAX_ENUM_VALUES:
        raise FieldRefused(f"{param}: the JSON schema has {enums} enum values; at most "
                           f"{SCHEMA_MAX_ENUM_VALUES} are turned into a grammar", param=param)
    if depth > SCHEMA_MAX_DEPTH:
        raise FieldRefused(f"{param}: the JSON schema nests {depth} JSON levels deep; at "
                           f"most {SCHEMA_MAX_DEPTH}", param=param)
