"""Streaming under faults: a backend that dies or is killed mid-stream, a client that
disconnects (upstream work must stop), a slow backend (timeouts), early failures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from localinfer.types import ChatChunk, ChatRequest, ChatStream, ChunkChoice, Delta
from tests.fake_backend import FakeBackend, Script
from tests.gateway_harness import RunApp, serve_gateway

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def sse_events(response: httpx.Response) -> list[Any]:
    events: list[Any] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


class Counting(FakeBackend):
    """Counts the chunks it actually produced, to tell whether generation stopped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.produced = 0

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        async for chunk in super().stream_chat(request, model):
            self.produced += 1
            yield chunk


class Stalls(FakeBackend):
    """Sends one chunk, then goes silent (a hung backend)."""

    async def stream_chat(self, request: ChatRequest, model: str) -> ChatStream:
        try:
            yield ChatChunk(model=model, choices=[ChunkChoice(delta=Delta(content="first"))])
            await asyncio.sleep(3600)
        finally:
            self.closed_streams += 1


# -- a backend that fails mid-stream ----------------------------------------------------

def test_backend_dying_mid_stream_ends_with_error_event(run_app: RunApp, tmp_path: Path) -> None:
    backend = FakeBackend("dies", tier="embedded").enqueue(
        Script(chunks=["a", "b", "c", "d"], fail_after=2))
    url = serve_gateway(run_app, tmp_path, [backend])
    with httpx.stream("POST", url + "/v1/chat/completions", json={**CHAT, "stream": True},
                      timeout=10) as response:
        assert response.status_code == 200
        events = sse_events(response)
    assert [e["choices"][0]["delta"]["content"] for e in events[:2]] == ["a", "b"]
    assert events[2]["error"]["code"] == "backend_error"
    assert "died" in events[2]["error"]["message"]
    assert events[3:] == ["[DONE]"]


def test_backend_dying_mid_stream_reaches_ollama_client_as_error(run_app: RunApp,
                                                                 tmp_path: Path) -> None:
    backend = FakeBackend("dies", tier="embedded").enqueue(
        Script(chunks=["a", "b", "c"], fail_after=1))
    url = serve_gateway(run_app, tmp_path, [backend])
    parts: list[str] = []
    with pytest.raises(ollama.ResponseError, match="died"):
        for part in ollama.Client(host=url).chat(model="fake-model", stream=True,
                                                 messages=[{"role": "user", "content": "x"}]):
            parts.append(part.message.content or "")
    assert parts == ["a"]


def test_failure_before_first_token_is_a_proper_http_error(run_app: RunApp,
                                                           tmp_path: Path) -> None:
    backend = FakeBackend("refuses", tier="embedded").enqueue(Script(fail_before=True))
    url = serve_gateway(run_app, tmp_path, [backend])
    response = httpx.post(url + "/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    assert "refused" in response.json()["error"]["message"]


# -- a backend process killed mid-stream ------------------------------------------------

SLOW_SERVER = textwrap.dedent(r'''
    import json, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    marker = sys.argv[1]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/v1/models":
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            body = json.dumps({"object": "list", "data": [
                {"id": "slow-model", "object": "model", "owned_by": "slow"}]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            # Chunked, as llama-server, Ollama and vLLM stream: a killed server leaves
            # an unfinished body behind, which the client can tell from a clean end.
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()

            def send(data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            try:
                for i in range(1200):
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0,
                             "model": "slow-model", "choices": [
                                 {"index": 0, "delta": {"content": f"t{i} "},
                                  "finish_reason": None}]}
                    send(f"data: {json.dumps(chunk)}\n\n".encode())
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                with open(marker, "w") as f:
                    f.write("client went away")
                return
            send(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
''')


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """A real OpenAI-compatible server process that streams a token every 50 ms and
    writes a marker file when its client goes away."""
    marker = tmp_path / "upstream-cancelled"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(marker)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield url, proc, marker
    finally:
        proc.kill()
        proc.wait(timeout=10)


def serve_over_server(run_app: RunApp, home: Path, server_url: str, **overrides: Any) -> str:
    return serve_gateway(run_app, home, [], servers=[server_url], embedded=False, **overrides)


def test_backend_killed_mid_stream_ends_stream_with_error(
        run_app: RunApp, tmp_path: Path,
        slow_server: tuple[str, subprocess.Popen[str], Path]) -> None:
    server_url, proc, _ = slow_server
    url = serve_over_server(run_app, tmp_path, server_url)
    started = time.monotonic()
    events: list[Any] = []
    with httpx.stream("POST", url + "/v1/chat/completions", timeout=20, json={
            "model": "slow-model", "stream": True,
            "messages": [{"role": "user", "content": "go"}]}) as response:
        assert response.status_code == 200
        assert response.headers["x-localinfer-tier"] == "local"
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
            if len(events) == 3:
                os.kill(proc.pid, signal.SIGKILL)
    assert time.monotonic() - started < 15, "the stream hung after the backend died"
    assert events[-1] == "[DONE]"
    assert "error" in events[-2] and events[-2]["error"]["type"] == "server_error"
    assert all("choices" in e for e in events[:3])


# -- the client disconnects: upstream work stops ----------------------------------------

def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_client_disconnect_stops_the_backend_stream(run_app: RunApp, tmp_path: Path) -> None:
    backend = Counting("slow", tier="embedded", model_ids=("fake-model",)).enqueue(
        Script(chunks=[f"t{i}" for i in range(400)], delay=0.02))
    url = serve_gateway(run_app, tmp_path, [backend])
    with httpx.stream("POST", url + "/v1/chat/completions", json={**CHAT, "stream": True},
                      timeout=10) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(4)]
    assert any(line.startswith("data: ") for line in received)
    assert wait_until(lambda: backend.closed_streams == 1), "backend stream was never closed"
    # Closed means the generator is finished: it cannot produce again (no waiting needed).
    assert backend.produced < 200, "generation ran to the end although the client left"


def test_client_disconnect_cancels_the_upstream_http_request(
        run_app: RunApp, tmp_path: Path,
        slow_server: tuple[str, subprocess.Popen[str], Path]) -> None:
    server_url, _, marker = slow_server
    url = serve_over_server(run_app, tmp_path, server_url)
    with httpx.stream("POST", url + "/v1/chat/completions", timeout=20, json={
            "model": "slow-model", "stream": True,
            "messages": [{"role": "user", "content": "go"}]}) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    assert wait_until(marker.exists), "the upstream server kept streaming to nobody"


def test_client_disconnect_during_non_streamed_answer_stops_work(run_app: RunApp,
                                                                 tmp_path: Path) -> None:
    backend = Counting("slow", tier="embedded", model_ids=("fake-model",)).enqueue(
        Script(chunks=[f"t{i}" for i in range(400)], delay=0.02))
    url = serve_gateway(run_app, tmp_path, [backend])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=0.3)
    assert wait_until(lambda: backend.closed_streams == 1)
    assert backend.produced < 200  # of 400: stopped soon after the client left


# -- slow backends hit the gateway timeout ----------------------------------------------

def test_slow_first_chunk_is_504_before_any_200(run_app: RunApp, tmp_path: Path) -> None:
    backend = FakeBackend("slow", tier="embedded").enqueue(Script(delay=30))
    url = serve_gateway(run_app, tmp_path, [backend], gateway_timeout=0.5)
    started = time.monotonic()
    response = httpx.post(url + "/v1/chat/completions", json={**CHAT, "stream": True},
                          timeout=10)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "backend_timeout"
    assert time.monotonic() - started < 5
    assert wait_until(lambda: backend.closed_streams == 1)


def test_slow_non_streamed_answer_is_504(run_app: RunApp, tmp_path: Path) -> None:
    backend = FakeBackend("slow", tier="embedded").enqueue(Script(delay=30))
    url = serve_gateway(run_app, tmp_path, [backend], gateway_timeout=0.5)
    response = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=10)
    assert response.status_code == 504
    assert "LOCALINFER_GATEWAY_TIMEOUT" in response.json()["error"]["message"]


def test_backend_stalling_mid_stream_ends_with_timeout_event(run_app: RunApp,
                                                             tmp_path: Path) -> None:
    backend = Stalls("stalls", tier="embedded")
    url = serve_gateway(run_app, tmp_path, [backend], gateway_timeout=0.5)
    started = time.monotonic()
    with httpx.stream("POST", url + "/v1/chat/completions", json={**CHAT, "stream": True},
                      timeout=10) as response:
        events = sse_events(response)
    assert time.monotonic() - started < 5
    assert events[0]["choices"][0]["delta"]["content"] == "first"
    assert events[1]["error"]["code"] == "backend_timeout"
    assert events[2] == "[DONE]"
    assert wait_until(lambda: backend.closed_streams == 1)


def test_a_stream_ends_at_its_request_deadline(run_app: RunApp, tmp_path: Path) -> None:
    """A backend that keeps sending (a chunk every 0.1 s, never idle long enough for
    gateway_timeout) is stopped at request_deadline: an error event naming it, then
    [DONE], and the upstream stream closed. Before: only the first chunk was bounded."""
    backend = FakeBackend("endless", tier="embedded").enqueue(
        Script(chunks=[f"t{i} " for i in range(600)], delay=0.1))
    url = serve_gateway(run_app, tmp_path, [backend], request_deadline=2)
    with httpx.stream("POST", url + "/v1/chat/completions", json={**CHAT, "stream": True},
                      timeout=120) as response:
        assert response.status_code == 200
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["code"] == "backend_timeout" and "request deadline" in error["message"]
    assert len(events) < 300  # cut long before the 600 chunks (60 s) ran out
    assert wait_until(lambda: backend.closed_streams == 1)
