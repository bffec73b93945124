"""The default embedding model's facts (all-MiniLM-L6-v2), importable without numpy or
ONNX Runtime (the `rag` extra): the gateway's /ui/ routes describe it either way."""

from __future__ import annotations

MODEL_ID = "all-minilm-l6-v2"
MODEL_ALIASES = ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"]
MODEL_ASSET = "all-minilm-l6-v2"
TOKENIZER_ASSET = "all-minilm-l6-v2-tokenizer"
DIM = 384
MAX_TOKENS = 256
