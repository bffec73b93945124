"""Looking at the embedded engine from a test: its slots (llama.cpp's ``/slots``), its
process, and requests that cannot end by themselves."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from localinfer.assets.bundled import bundled_model_path
from localinfer.assets.gguf import validate_gguf
from localinfer.backends.embedded import EmbeddedBackend
from localinfer.types import ChatRequest


def ask(content: str, **options: object) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": content}], **options)  # type: ignore[list-item]


def endless(**options: object) -> ChatRequest:
    """A request that cannot end by itself: end-of-generation is forbidden."""
    eos = validate_gguf(bundled_model_path()).metadata["tokenizer.ggml.eos_token_id"]
    settings: dict[str, object] = {"max_tokens": 1900, "logit_bias": {str(eos): -100.0}}
    return ask("Tell me a very long story about a lighthouse.", **{**settings, **options})


def slots(backend: EmbeddedBackend) -> list[dict[str, Any]]:
    """llama.cpp's own view of its slots (the running engine's ``/slots``)."""
    engine = backend.supervisor.running()
    assert engine is not None, "no engine runs"
    response = httpx.get(engine.url + "/slots", timeout=30,
                         headers={"authorization": f"Bearer {engine.key}"})
    response.raise_for_status()
    found = response.json()
    assert isinstance(found, list)
    return found


def busy_slots(backend: EmbeddedBackend) -> int:
    return sum(1 for slot in slots(backend) if slot.get("is_processing"))


async def wait_all_slots_free(backend: EmbeddedBackend, timeout: float = 60.0) -> bool:
    """Whether every slot is idle within ``timeout`` (a generous bound: an event, not a
    timing — generation that stopped frees its slot at the next token)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(busy_slots, backend) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


async def wait_gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return gone(pid)
