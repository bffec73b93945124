"""Whether the engine would fit in memory, said before llama.cpp tries: the weights plus
the KV cache of every slot (f16 keys and values, per llama.cpp's default), from the GGUF
header. A model that cannot fit is refused with what to change, instead of the kernel's
OOM killer ending the engine mid-load."""

from __future__ import annotations

from dataclasses import dataclass

from ...assets.gguf import GGUFInfo
from ...assets.progress import format_bytes
from ...assets.system import Memory
from ...errors import BackendError

KV_BYTES = 2  # f16 keys and values
OVERHEAD = 64 * 1024 * 1024  # compute buffers and the server itself, roughly


@dataclass(frozen=True)
class Need:
    weights: int
    kv_cache: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + OVERHEAD


def need(info: GGUFInfo, context: int, parallel: int) -> Need:
    arch = info.architecture or str(info.metadata.get("general.architecture", ""))

    def number(key: str) -> int:
        value = info.metadata.get(f"{arch}.{key}")
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    layers, width = number("block_count"), number("embedding_length")
    heads, kv_heads = number("attention.head_count"), number("attention.head_count_kv")
    kv_width = width * kv_heads // heads if heads and kv_heads else width
    per_token = 2 * layers * kv_width * KV_BYTES
    return Need(weights=info.file_size, kv_cache=per_token * context * parallel)


def check_fits(info: GGUFInfo, context: int, parallel: int, memory: Memory) -> None:
    """BackendError (this tier cannot serve; the router may try the next) when the engine
    needs more than the memory available now."""
    wanted = need(info, context, parallel)
    if wanted.total <= memory.available:
        return
    raise BackendError(
        f"{info.path.name} needs about {format_bytes(wanted.total)} (weights "
        f"{format_bytes(wanted.weights)} + context cache {format_bytes(wanted.kv_cache)} for "
        f"{parallel} × {context} tokens) but {format_bytes(memory.available)} is available; "
        "lower embedded_context or embedded_parallel, or use a smaller model",
        backend="embedded")
