"""Hosts: aggregate tokens/s through the gateway over 1, 2 and 3 llama-server hosts, and
what routing costs per request with 10 hosts declared instead of 1.

    .venv/bin/python bench/bench_hosts.py [--streams 6] [--tokens 48] [--rounds 3]
        [--calls 20000]

1. Throughput: three real llama-server processes (the build the tests use, the bundled
   SmolLM2-135M GGUF, 1 thread each) on loopback ports; `localinfer serve` in its own
   process with 1, 2 or 3 of them declared as [[hosts]]; `--streams` concurrent streamed
   chat requests of `--tokens` tokens each; tokens/s = content chunks / wall time of the
   round. Median of `--rounds`.
2. Routing overhead: `Router.candidates()` for a named model with the discovery sweep
   cached (no network), 1 host vs 10 hosts each serving the model; CPU time per call,
   median of 5 batches of `--calls`.

Prints markdown with the machine, the command and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.serve import ServerProcess, free_port  # noqa: E402


def llama_server_bin() -> Path:
    out = subprocess.run(["bash", str(REPO / "scripts" / "build-llama-cpp.sh")],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHON": sys.executable})
    return Path(out.stdout.strip().splitlines()[-1]) / "llama-server"


def start_llama(binary: Path, gguf: Path, logs: Path, index: int) -> tuple[ServerProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
           "-c", "1024", "-t", "1", "--no-webui"]
    return ServerProcess(cmd, url + "/health", log=logs / f"llama{index}.log",
                         timeout=180).start(), url


def start_gateway(home: Path, hosts: list[str]) -> tuple[ServerProcess, str]:
    home.mkdir(parents=True, exist_ok=True)
    blocks = "".join(f'[[hosts]]\nurl = "{u}"\nname = "h{i}"\n\n' for i, u in enumerate(hosts))
    (home / "config.toml").write_text(blocks)
    port = free_port()
    env = {"LOCALINFER_HOME": str(home), "LOCALINFER_EMBEDDED": "off",
           "LOCALINFER_DISCOVERY_TIMEOUT": "5",
           "LOCALINFER_SCAN_DEFAULT_PORTS": "false"}
    cmd = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m",
           "localinfer.cli.main", "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    return ServerProcess(cmd, url + "/health", log=home / "gateway.log", timeout=60).start(), url


async def one_stream(http: httpx.AsyncClient, tokens: int, index: int) -> tuple[int, str]:
    body = {"messages": [{"role": "user", "content": f"Write a story about ship {index}."}],
            "max_tokens": tokens, "stream": True}
    chunks = 0
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        host = response.headers.get("x-localinfer-host", "?")
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                data = json.loads(line[6:])
                if any(c.get("delta", {}).get("content") for c in data.get("choices", [])):
                    chunks += 1
    return chunks, host


async def round_trip(gateway: str, streams: int, tokens: int) -> tuple[float, dict[str, int]]:
    async with httpx.AsyncClient(base_url=gateway, timeout=600, trust_env=False,
                                 limits=httpx.Limits(max_connections=64)) as http:
        started = time.perf_counter()
        results = await asyncio.gather(*(one_stream(http, tokens, i) for i in range(streams)))
        wall = time.perf_counter() - started
    spread: dict[str, int] = {}
    for _, host in results:
        spread[host] = spread.get(host, 0) + 1
    return sum(c for c, _ in results) / wall, spread


def throughput(args: argparse.Namespace) -> list[tuple[int, float, str]]:
    from localinfer.assets.bundled import bundled_model_path

    binary, gguf = llama_server_bin(), bundled_model_path()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        servers = [start_llama(binary, gguf, Path(tmp), i) for i in range(3)]
        try:
            for count in (1, 2, 3):
                gw, url = start_gateway(Path(tmp) / f"home{count}", [u for _, u in servers[:count]])
                try:
                    asyncio.run(round_trip(url, 2, 4))  # warm: discovery, connections
                    runs = [asyncio.run(round_trip(url, args.streams, args.tokens))
                            for _ in range(args.rounds)]
                finally:
                    gw.stop()
                rate = statistics.median(r for r, _ in runs)
                rows.append((count, rate, json.dumps(runs[-1][1], sort_keys=True)))
        finally:
            for proc, _ in servers:
                proc.stop()
    return rows


def routing_overhead(args: argparse.Namespace) -> dict[int, float]:
    from localinfer.discovery import Discovery
    from localinfer.http import EgressPolicy
    from localinfer.router import Router
    from localinfer.settings import Settings
    from localinfer.types import ModelInfo, ServerInfo

    out: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as home:
        for count in (1, 10):
            urls = [f"http://127.0.0.1:{20000 + i}" for i in range(count)]
            settings = Settings(home=home, scan_default_ports=False, embedded=False,
                                discovery_ttl=1e9,
                                hosts=[{"url": u, "name": f"h{i}"} for i, u in enumerate(urls)])
            policy = EgressPolicy()
            discovery = Discovery(settings, policy)
            servers = []
            for u in urls:
                server = ServerInfo(kind="llama.cpp", base_url=u, api_base=u + "/v1")
                server.models = [ModelInfo(id="m", backend=server.name, tier="local")]
                servers.append(server)
            discovery._result, discovery._swept_at = servers, time.monotonic()
            router = Router(settings, policy, discovery)

            async def batch(n: int, router: Router = router) -> float:
                await router.candidates("m", "chat")
                # CPU time of this process: on a shared, loaded machine wall time mostly
                # measures waiting for a core.
                started = time.process_time()
                for _ in range(n):
                    await router.candidates("m", "chat")
                return (time.process_time() - started) / n

            async def measure(router: Router = router) -> float:
                try:
                    return statistics.median([await batch(args.calls, router)
                                              for _ in range(5)])
                finally:
                    await router.aclose()

            out[count] = asyncio.run(measure())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} vCPUs, Python "
          f"{platform.python_version()}, load average {load[0]:.1f} at start\n")
    overhead = routing_overhead(args)
    print("| hosts declared | `Router.candidates()` CPU time per call (median) |\n|---|---|")
    for count, seconds in overhead.items():
        print(f"| {count} | {seconds * 1e6:.1f} µs |")
    print(f"\nadded by 9 more hosts: {(overhead[10] - overhead[1]) * 1e6:.1f} µs per request\n")
    if args.skip_throughput:
        return
    rows = throughput(args)
    print(f"| llama-server hosts | aggregate tokens/s ({args.streams} streams × "
          f"{args.tokens} tokens, median of {args.rounds}) | ratio to 1 host "
          "| streams per host (last round) |")
    print("|---|---|---|---|")
    for count, rate, spread in rows:
        print(f"| {count} | {rate:.1f} | {rate / rows[0][1]:.2f}× | {spread} |")
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
