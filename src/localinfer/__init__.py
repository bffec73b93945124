"""localinfer: local-first AI inference."""

__version__ = "0.1.0"
