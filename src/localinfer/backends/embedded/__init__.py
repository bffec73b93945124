"""The embedded tier: llama.cpp (llama-cpp-python) in a worker process.

``backend`` holds the Backend; ``process`` the parent's handle on the worker;
``worker`` the child script; ``params`` the request mapping.
"""

from .backend import EmbeddedBackend

__all__ = ["EmbeddedBackend"]
