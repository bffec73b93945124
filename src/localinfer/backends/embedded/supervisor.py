"""One engine per home, shared by every process (as Ollama runs one server for all its
clients): the first process that needs the embedded tier starts the child under a file
lock and writes its address, key and pid to ``engine.json`` (readable by the user only);
every other process — the gateway, CLI commands, scripts, MCP — finds it there, checks
that it is alive and serves the same model with the same settings, and uses it.

A state file that names a dead process, a process that is not our engine, or an engine
that does not answer its key is replaced, never trusted. An engine with other settings
is stopped and replaced at once. The child stops by itself when idle (engine.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Final

from filelock import FileLock, Timeout

from ...errors import BackendError, BadModelFile
from ...statefile import write_json_atomic

ENGINE_MODULE: Final = "localinfer.backends.embedded.engine"
# Bumped when engine.py starts llama.cpp differently: older engines are then replaced.
ENGINE_REVISION: Final = 2
STATE_FILE: Final = "engine.json"
LOCK_FILE: Final = "engine.lock"
LOG_FILE: Final = "engine.log"
HEALTH_TIMEOUT: Final = 3.0
STOP_GRACE: Final = 5.0
# Names a child must not inherit: it needs no credentials of any kind.
_SECRET_MARKERS: Final = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


@dataclass(frozen=True)
class EngineConfig:
    """What the engine serves and how; two processes share an engine only when their
    configs (and the model file itself) are the same."""

    model: str
    context: int
    parallel: int
    threads: int
    gpu_layers: int
    chat_template: str | None = None
    alias: str | None = None

    def fingerprint(self) -> str:
        """The config plus the model's and template's file stamps: a model file replaced
        in place is a change too."""
        stamps = [_stamp(self.model), _stamp(self.chat_template) if self.chat_template else None]
        text = json.dumps([ENGINE_REVISION, asdict(self), stamps], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Engine:
    """A running engine, as its state file describes it."""

    url: str
    key: str
    pid: int
    fingerprint: str
    started: float
    compute: dict[str, Any] | None = None

    @staticmethod
    def from_json(data: object) -> Engine:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        url, key, pid = data.get("url"), data.get("key"), data.get("pid")
        fp = data.get("fingerprint")
        if not (isinstance(url, str) and url.startswith("http://127.0.0.1:")
                and isinstance(key, str) and isinstance(pid, int) and not isinstance(pid, bool)
                and pid > 0 and isinstance(fp, str)):
            raise ValueError("missing or malformed fields")
        started = data.get("started")
        compute = data.get("compute")
        return Engine(url, key, pid, fp,
                      float(started) if isinstance(started, int | float) else 0.0,
                      compute if isinstance(compute, dict) else None)


class Supervisor:
    """Finds, starts, replaces and stops the home's engine. Blocking: call it from a
    thread (``asyncio.to_thread``)."""

    def __init__(self, home: Path, *, idle_timeout: float, start_timeout: float) -> None:
        self.home = home
        self.state_path = home / STATE_FILE
        self.lock_path = home / LOCK_FILE
        self.log_path = home / LOG_FILE
        self.idle_timeout = idle_timeout
        self.start_timeout = start_timeout

    # -- reading -----------------------------------------------------------------------

    def running(self) -> Engine | None:
        """The engine the state file names, if its process is alive (no lock, no HTTP)."""
        engine = self._read()
        return engine if engine is not None and _is_engine_process(engine.pid) else None

    def _read(self) -> Engine | None:
        try:
            return Engine.from_json(json.loads(self.state_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None  # missing or damaged: not trusted, replaced under the lock

    # -- the one way in ----------------------------------------------------------------

    def ensure(self, config: EngineConfig) -> Engine:
        """The home's engine for ``config``: the running one when it matches and answers,
        else a fresh one (an old one with other settings is stopped first)."""
        fingerprint = config.fingerprint()
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self.lock_path), timeout=self.start_timeout):
                current = self._read()
                if current is not None:
                    if current.fingerprint == fingerprint and self._healthy(current):
                        return current
                    self._stop_process(current.pid)
                    self._forget(current)
                engine = self._start(config, fingerprint)
                write_json_atomic(self.state_path, asdict(engine))
                return engine
        except Timeout:
            raise BackendError(
                f"the embedded engine did not start within {self.start_timeout:g}s (another "
                f"process holds {self.lock_path}); see {self.log_path}",
                backend="embedded") from None

    def discard(self, engine: Engine) -> None:
        """Stop ``engine`` (hung or crashed) unless another process already replaced it."""
        with FileLock(str(self.lock_path), timeout=self.start_timeout):
            current = self._read()
            if current is None or current.pid == engine.pid:
                self._stop_process(engine.pid)
                self._forget(current)

    def stop(self) -> bool:
        """Stop the home's engine, if one runs. True when one was stopped."""
        with FileLock(str(self.lock_path), timeout=self.start_timeout):
            current = self._read()
            if current is None:
                return False
            self._stop_process(current.pid)
            self._forget(current)
            return True

    # -- helpers -----------------------------------------------------------------------

    def _forget(self, engine: Engine | None) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    def _healthy(self, engine: Engine) -> bool:
        if not _is_engine_process(engine.pid):
            return False
        # /health answers anyone; /v1/models only the key: proof it is our engine.
        request = urllib.request.Request(engine.url + "/v1/models",
                                         headers={"Authorization": f"Bearer {engine.key}"})
        try:
            with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def _stop_process(self, pid: int) -> None:
        """SIGTERM, then SIGKILL past the grace; returns once the process is gone (a
        SIGKILLed process still takes a moment to die, and its port with it)."""
        for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, STOP_GRACE)):
            if not _is_engine_process(pid):
                return  # gone, or the pid now belongs to someone else
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _is_engine_process(pid):
                time.sleep(0.02)

    def _start(self, config: EngineConfig, fingerprint: str) -> Engine:
        key = secrets.token_urlsafe(24)
        request = {"config": {**asdict(config), "state_file": str(self.state_path),
                              "idle_timeout": self.idle_timeout}, "key": key}
        with self.log_path.open("wb") as log:
            proc = subprocess.Popen(
                # The home in argv: `ps` tells whose engine it is (nothing secret).
                [sys.executable, "-m", ENGINE_MODULE, "--home", str(self.home)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, env=_engine_environment(),
                close_fds=True, start_new_session=True,  # shared: outlives this process
            )
        # Reap it whenever it exits, so a long-lived process collects no zombies.
        threading.Thread(target=proc.wait, name=f"engine-reaper-{proc.pid}", daemon=True).start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.close()
        line = _read_line(proc.stdout, self.start_timeout)
        if line is None:
            _kill(proc)
            raise BackendError(f"the embedded engine did not answer within "
                               f"{self.start_timeout:g}s; see {self.log_path}", backend="embedded")
        try:
            ready = json.loads(line) if line.strip() else {}
        except ValueError:
            ready = {}
        if "url" not in ready:
            _kill(proc)
            why = ready.get("error") or self._log_tail() or "it exited at start"
            raise BadModelFile(f"llama.cpp could not load {config.model}: {why}")
        return Engine(url=str(ready["url"]), key=key, pid=proc.pid, fingerprint=fingerprint,
                      started=time.time(), compute=_compute_of(ready))

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        errors = [ln for ln in lines if " E " in ln or "error" in ln.lower()]
        return (errors or lines or [""])[-1].strip()


def _compute_of(ready: dict[str, Any]) -> dict[str, Any] | None:
    compute = ready.get("compute")
    return compute if isinstance(compute, dict) else None


def _read_line(pipe: IO[bytes], timeout: float) -> str | None:
    """One line from ``pipe`` within ``timeout`` (a thread: portable, unlike select on
    Windows pipes); None on time-out."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0].decode("utf-8", "replace") if got else None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        proc.kill()


def _engine_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not any(marker in k.upper() for marker in _SECRET_MARKERS)}


def _stamp(path: str | None) -> list[int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def engine_processes() -> dict[int, Path]:
    """Every running engine on this machine (Linux: from /proc) and its home."""
    found: dict[int, Path] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if ENGINE_MODULE.encode() in argv and b"--home" in argv:
            at = argv.index(b"--home") + 1
            if at < len(argv):
                found[int(proc.name)] = Path(os.fsdecode(argv[at]))
    return found


def stop_engines_under(root: Path) -> int:
    """Stop every engine whose home is ``root`` or below it (tests; a removed home).
    Returns how many were stopped."""
    stopped = 0
    root = root.resolve()
    for pid, home in engine_processes().items():
        if home.resolve() == root or root in home.resolve().parents:
            Supervisor(home, idle_timeout=0, start_timeout=STOP_GRACE)._stop_process(pid)
            with contextlib.suppress(OSError):
                (home / STATE_FILE).unlink()
            stopped += 1
    return stopped


def _is_engine_process(pid: int) -> bool:
    """Alive, not a zombie, and (where /proc tells) running our engine module: a reused
    pid is never taken for the engine, and never signalled."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not ours
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no /proc (macOS, Windows): alive is all we can tell
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state != "Z" and ENGINE_MODULE.encode() in cmdline
