"""The embedded tier: llama.cpp's own server (the ``xllamacpp`` wheel) in one child
process per home, shared by every localinfer process.

``backend`` holds the Backend (the model it serves, the engine's life); ``supervisor``
finds, starts and replaces the home's engine; ``engine`` is the child.
"""

from .backend import EmbeddedBackend

__all__ = ["EmbeddedBackend"]
