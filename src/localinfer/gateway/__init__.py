"""The OpenAI- and Ollama-compatible gateway on localhost (`localinfer serve`)."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
