"""What the gateway adds: latency, throughput and per-chunk cost against an instant
OpenAI-compatible backend on loopback, side by side with LiteLLM's proxy.

    .venv/bin/python bench/bench_gateway.py [--requests 2000] [--seconds 5]
        [--litellm PATH] [--baseline /tmp/gw-base/src] [--growth] [--profile DIR]

Three processes per target: the instant fake backend (raw ASGI on uvicorn, no
framework), the server under test (`localinfer serve`, or `litellm --config`) and this
script as the client. Figures:

1. Latency of one non-streamed chat request (sequential, keep-alive): p50 and p99
   direct to the fake and through each proxy; "added" = proxy p50 - direct p50.
2. Non-streamed requests per second with 32 concurrent keep-alive connections.
3. Streaming: time per chunk of a 400-chunk answer, through the proxy minus direct.
4. The JSON path: parse a chat body and write a response, stdlib json vs orjson.
5. ``--baseline SRC``: a second localinfer gateway from another checkout's ``src``
   (e.g. a git worktree of an older commit) measured in the same run, for before/after.
6. ``--growth``: a 32-chunk streamed chat with 1, 8, 32 and 128 concurrent streams,
   direct and through each localinfer gateway (p50 / p99 per stream).
7. ``--interleave N``: with ``--baseline``, N rounds of 100 sequential chats to the fake,
   this gateway and the baseline in turn (both gateways up at once), so a loaded
   machine's swings land on all three alike: p50s and CPU per request from those rounds.
8. ``--client-cpu``: this process's CPU per sequential chat to the fake through the
   bench's raw asyncio client and ``http.make_client`` (what the upstream client itself
   costs, and what a raw keep-alive pool could still save).
9. ``--profile DIR``: the gateway under cProfile for 1,000 chats and 200 streams; prints
   the top functions by own time.

Prints markdown tables with the machine and the command. LiteLLM is installed in its
own virtualenv (never in ours); without it its rows say why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MODEL = "bench-model"
# Both proxies check the same bearer token (LiteLLM refuses to start without one).
TOKEN = "sk-bench-" + "0123456789abcdef" * 2
AUTH = f"Authorization: Bearer {TOKEN}\r\n"
CHAT_BODY = json.dumps({"model": MODEL, "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Summarize this document in one sentence, please."}],
    "max_tokens": 32}).encode()

# -- the instant fake backend ----------------------------------------------------------


def fake_app() -> Any:
    """A raw ASGI OpenAI-compatible server that answers at once with canned bytes."""
    reply = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
        "model": MODEL, "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "A short, fixed summary of the document."}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}}).encode()
    models = json.dumps({"object": "list", "data": [
        {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}).encode()

    def chunk(i: int) -> bytes:
        return b"data: " + json.dumps({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": MODEL, "choices": [{"index": 0, "delta": {"content": f"t{i} "},
                                         "finish_reason": None}]}).encode() + b"\n\n"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/v1/models":
            await respond(send, models)
            return
        if scope["path"].endswith("/chat/completions"):
            request = json.loads(body or b"{}")
            if not request.get("stream"):
                await respond(send, reply)
                return
            count = int(request.get("max_tokens") or 16)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            for i in range(count):
                await send({"type": "http.response.body", "body": chunk(i), "more_body": True})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            return
        await respond(send, b'{"error": "not found"}', 404)

    async def respond(send: Any, data: bytes, status: int = 200) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    return app


def serve_fake(port: int) -> None:
    import uvicorn

    # backlog: the growth run opens 128 connections at once.
    uvicorn.run(fake_app(), host="127.0.0.1", port=port, log_level="error",
                access_log=False, backlog=1024)


# -- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f}s")


@contextmanager
def process(cmd: list[str], ready_url: str, env: dict[str, str] | None = None,
            log: Path | None = None,
            stop: int = signal.SIGTERM) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_http(ready_url, proc)
        yield proc
    finally:
        proc.send_signal(stop)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


# -- a minimal keep-alive HTTP/1.1 client (the same for every target) --------------------


class Conn:
    """One keep-alive connection; reads Content-Length and chunked bodies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base: str) -> Conn:
        hostport = base.split("://", 1)[1]
        host, port = hostport.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, hostport)

    async def post(self, path: str, body: bytes, headers: str = "") -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            return status, b"".join(parts)
        length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def latencies(base: str, path: str, n: int, headers: str) -> list[float]:
    conn = await Conn.open(base)
    samples = []
    try:
        for _ in range(max(100, n // 10)):  # warm-up: pools, caches, discovery
            await conn.post(path, CHAT_BODY, headers)
        for _ in range(n):
            start = time.perf_counter()
            status, _ = await conn.post(path, CHAT_BODY, headers)
            samples.append(time.perf_counter() - start)
            assert status == 200, status
    finally:
        conn.close()
    return samples


async def throughput(base: str, path: str, seconds: float, headers: str,
                     connections: int = 32) -> tuple[float, float]:
    """Requests/s and the p99 latency of one request, with ``connections`` at once."""
    conns = [await Conn.open(base) for _ in range(connections)]
    done = 0
    errors = 0
    samples: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(conn: Conn) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            start = time.perf_counter()
            status, _ = await conn.post(path, CHAT_BODY, headers)
            samples.append(time.perf_counter() - start)
            if status == 200:
                done += 1
            else:
                errors += 1

    await asyncio.gather(*(loop(c) for c in conns[:4]))  # warm-up round
    done = errors = 0
    samples.clear()
    stop = time.perf_counter() + seconds
    start = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    if errors:
        print(f"  ({errors} non-200 answers from {base})", file=sys.stderr)
    return done / elapsed, pct(samples, 0.99)


async def concurrent_streams(base: str, path: str, streams: int, rounds: int,
                             headers: str, chunks: int = 32) -> tuple[float, float]:
    """p50 and p99 of one whole streamed answer with ``streams`` streams at once."""
    body = json.dumps({"model": MODEL, "stream": True, "max_tokens": chunks,
                       "messages": [{"role": "user", "content": "go"}]}).encode()
    conns = [await Conn.open(base) for _ in range(streams)]
    samples: list[float] = []

    async def one(conn: Conn, keep: bool) -> None:
        start = time.perf_counter()
        status, data = await conn.post(path, body, headers)
        assert status == 200 and data.rstrip().endswith(b"[DONE]"), data[-200:]
        if keep:
            samples.append(time.perf_counter() - start)

    try:
        await asyncio.gather(*(one(c, False) for c in conns))  # warm-up
        for _ in range(rounds):
            await asyncio.gather(*(one(c, True) for c in conns))
    finally:
        for c in conns:
            c.close()
    return pct(samples, 0.5), pct(samples, 0.99)


async def stream_seconds(base: str, path: str, chunks: int, repeats: int,
                         headers: str) -> float:
    body = json.dumps({"model": MODEL, "stream": True, "max_tokens": chunks,
                       "messages": [{"role": "user", "content": "go"}]}).encode()
    conn = await Conn.open(base)
    samples = []
    try:
        for i in range(repeats + 2):
            start = time.perf_counter()
            status, data = await conn.post(path, body, headers)
            elapsed = time.perf_counter() - start
            assert status == 200 and data.rstrip().endswith(b"[DONE]"), data[-200:]
            assert data.count(b"data: ") >= chunks, data.count(b"data: ")
            if i >= 2:
                samples.append(elapsed)
    finally:
        conn.close()
    return statistics.median(samples)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (LiteLLM may fork workers)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = [int(k) for k in kids]
    return found + [g for k in found for g in children(k)]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- targets -----------------------------------------------------------------------------


@contextmanager
def localinfer_gateway(fake: str, home: Path, src: str | None = None,
                       profile: Path | None = None) -> Iterator[tuple[str, int]]:
    """``localinfer serve`` in front of the fake; ``src``: import localinfer from that
    checkout instead (a baseline); ``profile``: run it under cProfile, written there."""
    port = free_port()
    name = "baseline" if src else "gateway"
    env = {"LOCALINFER_HOME": str(home / name), "LOCALINFER_SERVERS": fake,
           "LOCALINFER_SCAN_DEFAULT_PORTS": "false", "LOCALINFER_EMBEDDED": "off",
           "LOCALINFER_DISCOVERY_TTL": "60", "LOCALINFER_TOKEN": TOKEN}
    if src:
        env["PYTHONPATH"] = src
    prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
    cmd = [sys.executable, *prof, "-m", "localinfer.cli.main", "serve", "--port", str(port)]
    # SIGINT under cProfile: uvicorn re-raises SIGTERM, which would end it unwritten.
    stop = signal.SIGINT if profile else signal.SIGTERM
    with process(cmd, f"http://127.0.0.1:{port}/health", env, home / f"{name}.log",
                 stop) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


@contextmanager
def litellm_proxy(litellm: str, fake: str, home: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    config = home / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {fake}/v1\n"
        "      api_key: not-needed\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  set_verbose: false\n")
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_TELEMETRY": "False", "NO_PROXY": "*", "LITELLM_MASTER_KEY": TOKEN}
    cmd = [litellm, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", "1"]
    with process(cmd, f"http://127.0.0.1:{port}/health/liveliness", env,
                 home / "litellm.log") as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


def json_path(repeats: int = 20000) -> list[tuple[str, float, float]]:
    import orjson

    from localinfer.types import ChatRequest, ChatResponse

    reply = ChatResponse.model_validate(json.loads(
        b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        b'"finish_reason":"stop","message":{"role":"assistant","content":"A short answer."}}]}'))
    as_dict = reply.model_dump(exclude_none=True)

    def timed(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats * 1e6

    return [
        ("parse a chat body into ChatRequest",
         timed(lambda: ChatRequest.model_validate(json.loads(CHAT_BODY))),
         timed(lambda: ChatRequest.model_validate_json(CHAT_BODY, strict=True))),
        ("write a chat response",
         timed(lambda: json.dumps(as_dict).encode()),
         timed(lambda: orjson.dumps(as_dict))),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--litellm", default=default_litellm(),
                        help="litellm executable (its own venv, or ours)")
    parser.add_argument("--baseline", metavar="SRC",
                        help="also measure a gateway imported from this src directory")
    parser.add_argument("--growth", action="store_true",
                        help="latency vs 1/8/32/128 concurrent streams")
    parser.add_argument("--interleave", type=int, metavar="ROUNDS",
                        help="with --baseline: interleaved latency rounds only")
    parser.add_argument("--client-cpu", action="store_true",
                        help="CPU per request of the upstream clients only")
    parser.add_argument("--profile", metavar="DIR", type=Path,
                        help="profile the gateway(s) instead of benchmarking")
    parser.add_argument("--serve-fake", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake is not None:
        serve_fake(args.serve_fake)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for sub in ("gateway", "baseline"):
            (home / sub).mkdir()
        fake_port = free_port()
        fake = f"http://127.0.0.1:{fake_port}"
        rows: dict[str, dict[str, float | str]] = {}
        with process([sys.executable, __file__, "--serve-fake", str(fake_port)],
                     fake + "/v1/models") as fake_proc:
            if args.profile:
                return profile_gateways(fake, home, args)
            if args.client_cpu:
                return asyncio.run(client_cpu(fake))
            if args.interleave and args.baseline:
                return interleaved(fake, fake_proc.pid, home, args)
            targets: list[tuple[str, Callable[[], Any]]] = [
                ("localinfer gateway", lambda: localinfer_gateway(fake, home))]
            if args.baseline:
                targets.append(("localinfer gateway (baseline)",
                                lambda: localinfer_gateway(fake, home, args.baseline)))
            if shutil.which(args.litellm) or Path(args.litellm).exists():
                targets.append(("LiteLLM proxy", lambda: litellm_proxy(args.litellm, fake,
                                                                       home)))
            else:
                rows["LiteLLM proxy"] = {"note": f"not installed ({args.litellm})"}
            direct = measure(fake, fake_proc.pid, "", args, args.growth)
            rows["direct (fake backend)"] = direct
            for name, start in targets:
                try:
                    with start() as (url, pid):
                        rows[name] = measure(url, pid, AUTH, args,
                                             args.growth and name.startswith("localinfer"))
                except (RuntimeError, OSError, AssertionError) as exc:
                    rows[name] = {"note": f"failed: {exc}"}
        report(rows, direct, args)
    return 0


def default_litellm() -> str:
    own = Path("/tmp/litellm-venv/bin/litellm")
    return str(own) if own.exists() else str(Path(sys.executable).parent / "litellm")


GROWTH = (1, 8, 32, 128)


def measure(base: str, pid: int, headers: str, args: argparse.Namespace,
            growth: bool = False) -> dict[str, Any]:
    path = "/v1/chat/completions"
    cpu = cpu_seconds(pid)
    lat = asyncio.run(latencies(base, path, args.requests, headers))
    # CPU the server spent per request: unlike wall time, not skewed by other load.
    cpu_per = (cpu_seconds(pid) - cpu) / (args.requests + max(100, args.requests // 10))
    rps, p99_32 = asyncio.run(throughput(base, path, args.seconds, headers))
    stream = asyncio.run(stream_seconds(base, path, args.chunks, 10, headers))
    row = {"p50": pct(lat, 0.5) * 1e3, "p99": pct(lat, 0.99) * 1e3, "rps": rps,
           "p99_32": p99_32 * 1e3, "stream": stream, "cpu": cpu_per * 1e6}
    if growth:  # not LiteLLM's: 128 streams through it would take minutes
        for n in GROWTH:
            rounds = max(3, 256 // n)
            p50, p99 = asyncio.run(concurrent_streams(base, path, n, rounds, headers))
            row[f"s{n}"] = (p50 * 1e3, p99 * 1e3)
    return row


async def client_cpu(fake: str, n: int = 1000) -> int:
    from localinfer.http import EgressPolicy, make_client

    policy = EgressPolicy(recorders=[lambda record: None])
    client = make_client(policy, tier="local", base_url=fake + "/v1")
    raw = await Conn.open(fake)

    async def ours() -> None:
        await (await client.post("/chat/completions", content=CHAT_BODY)).raise_for_status()

    async def bare() -> None:
        await raw.post("/v1/chat/completions", CHAT_BODY)

    print("| client (this process, sequential) | CPU µs/request | wall µs/request |")
    print("|---|---|---|")
    try:
        for name, call in [("raw asyncio keep-alive (the bench's client)", bare),
                           ("http.make_client (over aiohttp)", ours)]:
            for _ in range(n // 5):
                await call()
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(n):
                await call()
            print(f"| {name} | {(time.process_time() - cpu) / n * 1e6:.0f} | "
                  f"{(time.perf_counter() - wall) / n * 1e6:.0f} |")
    finally:
        await client.aclose()
        raw.close()
    return 0


def interleaved(fake: str, fake_pid: int, home: Path, args: argparse.Namespace) -> int:
    path = "/v1/chat/completions"
    with localinfer_gateway(fake, home) as (new, new_pid), \
            localinfer_gateway(fake, home, args.baseline) as (old, old_pid):
        targets = [("direct (fake backend)", fake, fake_pid, ""),
                   ("localinfer gateway", new, new_pid, AUTH),
                   ("localinfer gateway (baseline)", old, old_pid, AUTH)]
        samples: dict[str, list[float]] = {name: [] for name, *_ in targets}
        cpu: dict[str, float] = dict.fromkeys(samples, 0.0)
        rates: dict[str, list[float]] = {name: [] for name, *_ in targets}
        for _ in range(args.interleave):
            for name, url, pid, headers in targets:
                before = cpu_seconds(pid)
                # latencies() warms up with 100 first; only the 100 timed ones are kept.
                samples[name] += [x * 1e3 for x in asyncio.run(
                    latencies(url, path, 100, headers))]
                cpu[name] += cpu_seconds(pid) - before
                # Throughput in short windows taken in turn, so load swings hit all alike.
                rates[name].append(asyncio.run(throughput(url, path, 1.5, headers))[0])
    direct = pct(samples["direct (fake backend)"], 0.5)
    print(f"Interleaved: {args.interleave} rounds x 100 chats per target; load average "
          f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| target | p50 ms | p99 ms | added p50 ms | server CPU µs/req | "
          "req/s, 32 conns (median of rounds) |")
    print("|---|---|---|---|---|---|")
    for name, values in samples.items():
        per = cpu[name] / (args.interleave * 200) * 1e6  # 100 warm-up + 100 timed
        print(f"| {name} | {pct(values, 0.5):.3f} | {pct(values, 0.99):.3f} | "
              f"{pct(values, 0.5) - direct:.3f} | {per:.0f} | "
              f"{statistics.median(rates[name]):.0f} |")
    ratios = [this / base for this, base in zip(
        rates["localinfer gateway"], rates["localinfer gateway (baseline)"], strict=True) if base]
    print(f"\nThroughput, this / baseline per round: median {statistics.median(ratios):.2f}× "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


def profile_gateways(fake: str, home: Path, args: argparse.Namespace) -> int:
    import pstats

    args.profile.mkdir(parents=True, exist_ok=True)
    sources = [("new", None)] + ([("baseline", args.baseline)] if args.baseline else [])
    path = "/v1/chat/completions"
    for name, src in sources:
        out = args.profile / f"{name}.prof"
        with localinfer_gateway(fake, home, src, profile=out) as (url, _pid):
            asyncio.run(latencies(url, path, 1000, AUTH))
            asyncio.run(stream_seconds(url, path, 32, 200, AUTH))
        stats = pstats.Stats(str(out))
        print(f"\n## {name} ({src or 'this checkout'}): top 30 by own time\n")
        stats.sort_stats("tottime").print_stats(30)
    return 0


def report(rows: dict[str, dict[str, Any]], direct: dict[str, Any],
           args: argparse.Namespace) -> None:
    cpu = platform.processor() or platform.machine()
    print(f"## Gateway ({platform.system()} {platform.release()}, {cpu}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()})\n")
    print(f"Command: `python bench/bench_gateway.py --requests {args.requests} "
          f"--seconds {args.seconds:g} --chunks {args.chunks}`\n")
    print(f"Load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| target | p50 ms | p99 ms | added p50 ms | server CPU µs/req | req/s (32 conns) | "
          f"p99 ms (32 conns) | per-chunk added µs ({args.chunks} chunks) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        if "note" in row:
            print(f"| {name} | {row['note']} | | | | | | |")
            continue
        added = row["p50"] - direct["p50"]
        chunk = (row["stream"] - direct["stream"]) / args.chunks * 1e6
        print(f"| {name} | {row['p50']:.3f} | {row['p99']:.3f} | {added:.3f} | "
              f"{row['cpu']:.0f} | {row['rps']:.0f} | {row['p99_32']:.2f} | {chunk:.1f} |")
    gw, lite = rows.get("localinfer gateway", {}), rows.get("LiteLLM proxy", {})
    if "rps" in gw and "rps" in lite:
        print(f"\nThroughput: localinfer {gw['rps'] / lite['rps']:.1f}× LiteLLM's.")
    base = rows.get("localinfer gateway (baseline)", {})
    if "rps" in gw and "rps" in base:
        print(f"Against the baseline: added p50 {gw['p50'] - direct['p50']:.3f} vs "
              f"{base['p50'] - direct['p50']:.3f} ms, CPU {gw['cpu']:.0f} vs "
              f"{base['cpu']:.0f} µs/request, {gw['rps'] / base['rps']:.2f}× its req/s.")
    if args.growth:
        print("\n| concurrent streams (32 chunks each) | "
              + " | ".join(f"{n}: p50 / p99 ms" for n in GROWTH) + " |")
        print("|---|" + "---|" * len(GROWTH))
        for name, row in rows.items():
            if "s1" in row:
                print(f"| {name} | " + " | ".join(
                    "{:.2f} / {:.2f}".format(*row[f"s{n}"]) for n in GROWTH) + " |")
    print("\n| JSON path (µs per call) | json + pydantic | orjson / pydantic-core |")
    print("|---|---|---|")
    for name, slow, fast in json_path():
        print(f"| {name} | {slow:.1f} | {fast:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
