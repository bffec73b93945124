"""The engine child: llama.cpp's own HTTP server (``xllamacpp.Server``) on 127.0.0.1.

Run as ``python -m localinfer.backends.embedded.engine --home HOME``; the parent writes one JSON
object (an ``EngineConfig`` and the API key) to its stdin, so the key never appears in
``ps``. The child answers with one JSON line on stdout once the server listens
(``{"url": ..., "pid": ...}``) or a line with ``"error"``, then serves until:

- no request for ``idle_timeout`` seconds (llama.cpp's own counters are unchanged and no
  slot is busy), or
- the home's state file no longer names this process (another process replaced the
  engine, or the home is gone), or
- SIGTERM/SIGINT.

Everything llama.cpp prints goes to stderr, which the parent points at ``engine.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

# How often the child looks at its own counters and at the state file.
WATCH_INTERVAL = 1.0


def build_params(config: dict[str, Any], key: str) -> Any:
    """``xllamacpp.CommonParams`` for one engine, as ``llama-server`` flags would set them."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = config["model"]
    p.n_parallel = int(config["parallel"])
    # llama-server splits n_ctx among its slots: each gets the full context.
    p.n_ctx = int(config["context"]) * p.n_parallel
    p.kv_unified = False
    p.cpuparams.n_threads = int(config["threads"])
    p.cpuparams_batch.n_threads = int(config["threads"])
    p.n_gpu_layers = int(config["gpu_layers"])
    p.hostnames = ["127.0.0.1"]
    p.port = int(config.get("port", 0))
    p.api_keys = [key] if key else []
    p.use_jinja = True  # the model's own Jinja template: tools, tool_choice, reasoning
    if config.get("chat_template"):
        p.chat_template = Path(config["chat_template"]).read_text(encoding="utf-8")
    if config.get("alias"):
        p.model_alias = {str(config["alias"])}  # a set of names in this llama.cpp
    p.endpoint_slots = True
    p.endpoint_props = True
    p.endpoint_metrics = True
    p.ui = False  # no built-in web page: /ui/ is ours
    p.offline = True  # never fetch anything from a hub
    if config.get("embeddings"):
        p.embedding = True
    return p


def compute_report(config: dict[str, Any]) -> dict[str, Any]:
    """What this engine computes with: llama.cpp's CPU features and devices, the wheel."""
    import xllamacpp

    devices = [{"name": str(d.get("name")), "description": str(d.get("description")),
                "type": str(getattr(d.get("type"), "name", d.get("type"))),
                "memory_total": d.get("memory_total")} for d in xllamacpp.get_device_info()]
    return {"system_info": xllamacpp.get_system_info().strip(), "devices": devices,
            "xllamacpp": getattr(xllamacpp, "__version__", "unknown"),
            "threads": int(config["threads"]), "gpu_layers_requested": int(config["gpu_layers"]),
            "gpu_offload_supported": any("GPU" in d["type"] for d in devices)}


class IdleWatch:
    """Decides when the engine has been idle long enough: llama.cpp's Prometheus text
    changes whenever it processes anything (counters, busy slots)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._last_text = ""
        self._last_active = time.monotonic()

    def idle(self, metrics: str, now: float) -> bool:
        busy = any(line.startswith("llamacpp:requests_processing") and
                   not line.rstrip().endswith(" 0") for line in metrics.splitlines())
        if busy or metrics != self._last_text:
            self._last_text = metrics
            self._last_active = now
        return now - self._last_active >= self.timeout


def state_names_me(state_file: Path, pid: int) -> bool:
    """Whether the home's state file still names this process (missing or unreadable:
    no, except that a write in progress is given the benefit of the doubt)."""
    try:
        data = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    return isinstance(data, dict) and data.get("pid") == pid


def serve(config: dict[str, Any], key: str) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    import xllamacpp

    try:
        server = xllamacpp.Server(build_params(config, key))
    except Exception as exc:  # llama.cpp could not load the model: say why, then exit
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 3
    url = server.listening_address
    if not url:
        print(json.dumps({"error": "llama.cpp's server did not start listening"}), flush=True)
        return 3
    print(json.dumps({"url": url, "pid": os.getpid(), "compute": compute_report(config)}),
          flush=True)
    sys.stdout.close()  # the parent reads until EOF
    state_file = Path(config["state_file"]) if config.get("state_file") else None
    watch = IdleWatch(float(config.get("idle_timeout", 300.0)))
    # The parent writes the state file after reading our line: allow it a moment.
    grace_until = time.monotonic() + 30.0
    while not stop.wait(WATCH_INTERVAL):
        now = time.monotonic()
        if watch.idle(server.handle_metrics(), now):
            # Say we are gone before going, so nobody tries the port in between.
            if state_file is not None and state_names_me(state_file, os.getpid()):
                with contextlib.suppress(OSError):
                    state_file.unlink()
            break
        if state_file is not None and now > grace_until and \
                not state_names_me(state_file, os.getpid()):
            break
    del server  # joins llama.cpp's threads and frees the model
    return 0


def main() -> int:
    request = json.loads(sys.stdin.readline())
    return serve(request["config"], request.get("key", ""))


if __name__ == "__main__":
    sys.exit(main())
