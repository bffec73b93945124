"""The most memory one request can make the gateway hold (issue 26 figures): a gateway
process (`localinfer serve`) in front of a hostile OpenAI-compatible server on loopback
that answers with an endless body, streamed and whole, at the highest rate it can; the
gateway's peak RSS (VmHWM) above its idle RSS, and how long the upstream was held.

    .venv/bin/python bench/bench_gateway_rss.py
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.fakes.serve import AppServer, free_port

CHUNK = "x" * 16_000
# Pieces the upstream has written so far: still growing after the gateway answered means
# the upstream is still being made to work for a client that is gone. (It looks for a
# closed connection every 64 pieces, as a server that stops on disconnect does.)
written = [0]


async def models(_: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "flood", "object": "model"}]})


async def chat(request: Request) -> Response:
    body = await request.json()

    async def endless_sse() -> AsyncIterator[bytes]:
        piece = {"id": "c", "object": "chat.completion.chunk", "created": 1,
                 "model": "flood", "choices": [{"index": 0, "delta": {"content": CHUNK}}]}
        while not (written[0] % 64 == 0 and await request.is_disconnected()):
            written[0] += 1
            yield f"data: {json.dumps(piece)}\n\n".encode()

    async def endless_json() -> AsyncIterator[bytes]:
        yield b'{"id":"c","object":"chat.completion","created":1,"model":"flood",' \
              b'"choices":[{"index":0,"finish_reason":"stop","message":{"role":' \
              b'"assistant","content":"'
        while not (written[0] % 64 == 0 and await request.is_disconnected()):
            written[0] += 1
            yield CHUNK.encode()

    if body.get("stream"):
        return StreamingResponse(endless_sse(), media_type="text/event-stream")
    return StreamingResponse(endless_json(), media_type="application/json")


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def main() -> None:
    upstream = AppServer(Starlette(routes=[Route("/v1/models", models),
                                           Route("/v1/chat/completions", chat,
                                                 methods=["POST"])])).start()
    port = free_port()
    home = tempfile.mkdtemp(prefix="bench-rss-")
    env = {**os.environ, "LOCALINFER_HOME": home, "LOCALINFER_SERVERS": upstream.base_url,
           "LOCALINFER_SCAN_DEFAULT_PORTS": "0", "LOCALINFER_EMBEDDED": "0"}
    gateway = subprocess.Popen([sys.executable, "-m", "localinfer.cli.main", "serve", "--port",
                                str(port)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        async with httpx.AsyncClient(timeout=600) as client:
            await client.get(url + "/v1/models")
            idle = rss_kb(gateway.pid, "VmRSS")
            rows = []
            for stream in (True, False):
                t0 = time.monotonic()
                body = {"model": "flood", "stream": stream,
                        "messages": [{"role": "user", "content": "hi"}]}
                received = 0
                async with client.stream("POST", url + "/v1/chat/completions",
                                         json=body) as response:
                    async for part in response.aiter_bytes():
                        received += len(part)
                    status = response.status_code
                before = written[0]
                await asyncio.sleep(1.5)  # past the host's cooldown after a cut answer
                still = written[0] - before
                rows.append((stream, status, received, time.monotonic() - t0 - 1.5,
                             rss_kb(gateway.pid, "VmHWM"), still))
    finally:
        gateway.terminate()
        gateway.wait()
        upstream.stop()
    print(f"load average {os.getloadavg()[0]:.1f}; gateway idle RSS {idle / 1024:.0f} MB\n")
    print("| request | status | bytes to the client | time | gateway peak RSS above idle "
          "| upstream pieces written in the 1.5 s after |")
    print("|---|---|---|---|---|---|")
    for stream, status, received, took, peak, still in rows:
        print(f"| {'streamed' if stream else 'whole'} endless answer | {status} | "
              f"{received / 2**20:.1f} MiB | {took:.1f} s | {(peak - idle) / 1024:.0f} MB | "
              f"{still} |")


if __name__ == "__main__":
    asyncio.run(main())
