"""A WebAssembly sandbox for code an agent (or a model) wrote: CPython 3.12 or MicroPython
compiled to WASI, run by wasmtime in a killable worker process.

>>> from localinfer import sandbox
>>> r = sandbox.run("print(sum(range(10)))", timeout=5, memory="128M")
>>> r.exit_code, r.text, r.error
(0, '45\\n', None)

Needs the ``sandbox`` extra (``pip install 'localinfer[sandbox]'``): ``wasmtime`` and the
packages that ship the pinned ``.wasm`` files. Nothing is downloaded at run time.
"""

from ..errors import SandboxLimit, SandboxUnavailable
from .core import (
    DEFAULT_MEMORY,
    DEFAULT_TIMEOUT,
    Sandbox,
    SandboxResult,
    arun,
    default_sandbox,
    format_size,
    parse_size,
    run,
)
from .runtimes import RUNTIMES, Runtime, cache_dir, cwasm_path, get_runtime

__all__ = [
    "DEFAULT_MEMORY",
    "DEFAULT_TIMEOUT",
    "RUNTIMES",
    "Runtime",
    "Sandbox",
    "SandboxLimit",
    "SandboxResult",
    "SandboxUnavailable",
    "arun",
    "cache_dir",
    "cwasm_path",
    "default_sandbox",
    "format_size",
    "get_runtime",
    "parse_size",
    "run",
]
