"""Canned answers of local servers (httpx.MockTransport routes for tests.fakes.network),
taken from the servers' public docs and sources named in discovery/fingerprints.py: the
ones tests outside test_discovery_fingerprints.py use too."""

from __future__ import annotations

from typing import Any

from tests.fakes.network import Reply, ok


def openai_list(*ids: str, owned_by: str = "me", **extra: Any) -> dict[str, Any]:
    return {"object": "list",
            "data": [{"id": i, "object": "model", "created": 1, "owned_by": owned_by, **extra}
                     for i in ids]}


# llama-server (tools/server/server-context.cpp): /v1/models carries an Ollama-style
# "models" array next to the OpenAI "data" list.
LLAMA_SERVER: dict[str, Reply] = {
    "/health": ok({"status": "ok"}, server="llama.cpp"),
    "/props": ok({"default_generation_settings": {"n_ctx": 2048}, "total_slots": 1,
                  "model_path": "/models/smollm2.gguf", "build_info": "b7100-1a2b3c4"},
                 server="llama.cpp"),
    "/v1/models": ok({
        "models": [{"name": "smollm2", "model": "smollm2", "modified_at": "", "size": "",
                    "digest": "", "type": "model", "capabilities": ["completion"],
                    "details": {"format": "gguf", "family": ""}}],
        "object": "list",
        "data": [{"id": "smollm2", "aliases": ["smol"], "tags": [], "object": "model",
                  "created": 1, "owned_by": "llamacpp", "meta": {"n_ctx_train": 8192}}],
    }, server="llama.cpp"),
}

VLLM: dict[str, Reply] = {
    "/version": ok({"version": "0.6.3.post1"}),
    "/health": ok(""),
    "/v1/models": ok(openai_list("Qwen/Qwen2.5-7B-Instruct", owned_by="vllm",
                                 root="Qwen/Qwen2.5-7B-Instruct", max_model_len=32768)),
}
