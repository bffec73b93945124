"""Serve an ASGI app with uvicorn on loopback in a background thread, or run a server
subprocess until it answers (tests, benches)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


class _Server(uvicorn.Server):
    """uvicorn's server, stopped at once. uvicorn checks for exit on a 0.1 s tick, then
    gives open connections 0.1 s and in-flight requests ``timeout_graceful_shutdown``
    (a hanging fake's request: a whole second) before it cancels them; a test's server
    is stopped when the test is over, so its main loop wakes on ``stop()`` and its
    shutdown closes the connections and cancels what is left at once."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            # on_tick keeps the Date header fresh (every tenth tick): one tick a 0.1 s.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        tasks = list(self.server_state.tasks)
        for task in tasks:
            task.cancel()
        grace = self.config.timeout_graceful_shutdown
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), grace)

    def stop_soon(self) -> None:
        """From any thread: leave the main loop now."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)


class AppServer:
    """One uvicorn server on ``127.0.0.1:port`` (0: any free port)."""

    def __init__(self, app: ASGIApp, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, lifespan="off", log_level="critical",
                                # Fakes set their own Server header where the real one does.
                                server_header=False, timeout_graceful_shutdown=1)
        self.server = _Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"fake-server-{self.port}", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fake server on port {self.port} did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.stop_soon()
        self.thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """A server run as a subprocess (llama-server, llama_cpp.server, a fake), up once
    ``ready_url`` answers 200 and stopped on exit. Output goes to ``log`` if given."""

    def __init__(self, cmd: list[str], ready_url: str, *, log: Path | None = None,
                 cwd: Path | None = None, timeout: float = 120.0,
                 env: dict[str, str] | None = None) -> None:
        self.cmd, self.ready_url, self.log, self.cwd = cmd, ready_url, log, cwd
        self.timeout, self.env = timeout, env
        self.process: subprocess.Popen[bytes] | None = None

    def _output(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log else ""

    def start(self) -> ServerProcess:
        out = self.log.open("wb") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=out, env=self.env,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.cmd[0]} exited with {self.process.returncode}:\n"
                                   f"{self._output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ready_url, timeout=1.0, trust_env=False).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.ready_url} did not answer within {self.timeout}s:\n"
                           f"{self._output()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
