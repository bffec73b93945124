"""The one door to ONNX Runtime: every module in localinfer gets it from here.

ONNX Runtime's official wheels (1.29+) ship Microsoft's 1DS telemetry, on by default:
its threads resolve ``mobile.events.data.microsoft.com`` and post to it (bypassing the
egress ledger and offline mode), and it writes a device id and an event queue under
``~/.cache/Microsoft/DeveloperTools/.onnxruntime``. ``ORT_DISABLE_TELEMETRY=1`` is its
full opt-out, read once when the runtime initialises (at import): none of that is
created. So it is set here before the first import (children inherit it: workers, the
gateway's subprocesses), and ``disable_telemetry_events()`` is called too, for a
process that imported onnxruntime before us (then only non-essential events stop, so
we say so once).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from types import ModuleType

log = logging.getLogger("localinfer")

# What ONNX Runtime's build honours to stay silent (Privacy.md in its wheel).
TELEMETRY_OFF = {"ORT_DISABLE_TELEMETRY": "1"}

_lock = threading.Lock()
_module: ModuleType | None = None


def onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, its telemetry off. ImportError when not installed."""
    global _module
    with _lock:
        if _module is None:
            late = "onnxruntime" in sys.modules  # imported before we could set the switch
            os.environ.update(TELEMETRY_OFF)
            module = importlib.import_module("onnxruntime")
            module.disable_telemetry_events()
            if late:
                log.warning("onnxruntime was imported before localinfer: its telemetry "
                            "may be on for this process; set ORT_DISABLE_TELEMETRY=1")
            _module = module
        return _module


def quantization() -> ModuleType:
    """``onnxruntime.quantization``, imported only after the switch above."""
    onnxruntime()
    return importlib.import_module("onnxruntime.quantization")
