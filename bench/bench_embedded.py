"""Benchmark the embedded engine (llama.cpp's server from the xllamacpp wheel, one child
per home); prints a markdown table for docs/benchmarks.md. Every comparison is made in
one run, interleaved, so both sides see the same (shared, noisy) machine.

    .venv/bin/python bench/bench_embedded.py [--runs 3] [--threads 2] [--tokens 128]
        [--only a,b,c,d,e] [--llama-bin DIR]

(a) Decode tokens/s: the embedded tier through the public API (EmbeddedBackend, streamed,
    end-of-generation ignored so exactly --tokens come out; rate = (tokens - 1) / (first
    to last token), prompt excluded) and llama.cpp's own report of the same request
    (``timings.predicted_per_second``), against ``llama-bench -p 0 -n TOKENS`` built
    natively (-march=native) from the llama.cpp the wheel vendors
    (scripts/build-llama-cpp.sh).
(b) 4 concurrent streams against ``llama-server -np 4`` (natively built, same GGUF,
    threads and per-slot context): aggregate tokens/s, alternating; and time to first
    token of a short request arriving while 3 streams generate vs on an idle engine.
(c) Two processes streaming at once through the home's shared engine vs one process
    streaming two requests: aggregate tokens/s.
(d) The child: start-up time (cold: first start after the page cache was warmed once;
    warm: a restart), RSS at idle and while serving 4 streams.
(e) Prompt caching across turns: time to first token of turn 5 of a chat, with
    ``cache_prompt`` (llama.cpp's default) and without.
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

from localinfer.assets.bundled import bundled_model_path
from localinfer.backends.embedded import EmbeddedBackend
from localinfer.settings import Settings
from localinfer.types import ChatRequest

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Tell me a very long story about a lighthouse keeper and the sea."


def ask(content: str, **options: object) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": content}], **options)  # type: ignore[list-item]


def settings(home: Path, threads: int, **extra: object) -> Settings:
    return Settings(home=home, scan_default_ports=False, embedded_threads=threads,  # type: ignore[arg-type]
                    **extra)


async def stream_rate(backend: EmbeddedBackend, tokens: int) -> float:
    """Client-side decode rate of one stream of exactly ``tokens`` tokens."""
    times: list[float] = []
    request = ask(PROMPT, max_tokens=tokens, temperature=0.8, ignore_eos=True)
    async for chunk in backend.stream_chat(request, "default"):
        if chunk.text:
            times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


async def server_rate(url: str, key: str | None, tokens: int) -> float:
    """llama.cpp's own decode rate (timings.predicted_per_second) for one request."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=600) as client:
        response = await client.post(url + "/v1/chat/completions", headers=headers, json={
            "messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
            "temperature": 0.8, "ignore_eos": True})
        response.raise_for_status()
        return float(response.json()["timings"]["predicted_per_second"])


def llama_bench(bin_dir: Path, model: Path, threads: int, tokens: int) -> float:
    out = subprocess.run([str(bin_dir / "llama-bench"), "-m", str(model), "-t", str(threads),
                          "-p", "0", "-n", str(tokens), "-r", "1", "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=600)
    return float(json.loads(out.stdout)[0]["avg_ts"])


async def aggregate(url: str, key: str | None, streams: int, tokens: int) -> float:
    """Aggregate tokens/s of ``streams`` concurrent streamed requests (first to last token
    over all streams)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    stamps: list[float] = []

    async def one(client: httpx.AsyncClient) -> None:
        body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
                "temperature": 0.8, "ignore_eos": True, "stream": True}
        async with client.stream("POST", url + "/v1/chat/completions", headers=headers,
                                 json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {") and '"content"' in line:
                    stamps.append(time.perf_counter())

    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(one(client) for _ in range(streams)))
    return (len(stamps) - streams) / (max(stamps) - min(stamps))


async def ttft(url: str, key: str | None, busy: int, tokens: int) -> float:
    """Time to first token of a short request while ``busy`` streams generate."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=600) as client:
        background = [asyncio.create_task(aggregate(url, key, 1, tokens * 4))
                      for _ in range(busy)]
        if busy:
            await asyncio.sleep(1.0)  # let them reach the decode phase
        start = time.perf_counter()
        body = {"messages": [{"role": "user", "content": "Say yes."}], "max_tokens": 4,
                "stream": True}
        first = 0.0
        async with client.stream("POST", url + "/v1/chat/completions", headers=headers,
                                 json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {") and '"content"' in line and not first:
                    first = time.perf_counter() - start
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        return first


def start_llama_server(bin_dir: Path, model: Path, threads: int, parallel: int,
                       context: int) -> tuple[subprocess.Popen[bytes], str]:
    port = 18000 + os.getpid() % 1000
    proc = subprocess.Popen([str(bin_dir / "llama-server"), "-m", str(model), "--host",
                             "127.0.0.1", "--port", str(port), "-t", str(threads), "-np",
                             str(parallel), "-c", str(context * parallel), "--no-webui"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("llama-server did not start")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


CHILD = """
import asyncio, sys, time
from localinfer.backends.embedded import EmbeddedBackend
from localinfer.settings import Settings
from localinfer.types import ChatRequest
async def main():
    b = EmbeddedBackend(Settings(scan_default_ports=False, embedded_threads=int(sys.argv[1])))
    await b.warm()  # found and connected before "ready": both start streaming together
    times = []
    r = ChatRequest(messages=[{"role": "user", "content": sys.argv[3]}],
                    max_tokens=int(sys.argv[2]), temperature=0.8, ignore_eos=True)
    sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
    async for c in b.stream_chat(r, "default"):
        if c.text: times.append(time.perf_counter())
    await b.aclose()
    print(len(times), times[0], times[-1])
asyncio.run(main())
"""


async def two_processes(home: Path, threads: int, tokens: int) -> float:
    env = {**os.environ, "LOCALINFER_HOME": str(home), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(threads), str(tokens), PROMPT],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=600)[0].split() for p in procs]
    count = sum(int(o[0]) for o in outs) - 2
    return count / (max(float(o[2]) for o in outs) - min(float(o[1]) for o in outs))


def median(values: list[float]) -> float:
    return statistics.median(values)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--only", default="a,b,c,d,e")
    parser.add_argument("--llama-bin", type=Path, default=None)
    args = parser.parse_args()
    only = set(args.only.split(","))
    model = bundled_model_path()
    bin_dir = args.llama_bin or Path(subprocess.run(
        ["bash", str(REPO / "scripts" / "build-llama-cpp.sh")], capture_output=True, text=True,
        check=True, env={**os.environ, "PYTHON": sys.executable}).stdout.strip().splitlines()[-1])
    load = os.getloadavg()[0]
    print(f"Machine: {platform.machine()} {os.cpu_count()} cores, load {load:.1f} at start; "
          f"model {model.name}; threads {args.threads}; {args.runs} runs, interleaved.\n")
    home = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    backend = EmbeddedBackend(settings(home, args.threads, embedded_parallel=4))
    engine = await backend.warm()
    rows: list[str] = []
    try:
        if "a" in only:
            ours, reported, bench, native = [], [], [], []
            proc, url = start_llama_server(bin_dir, model, args.threads, 4, 2048)
            try:
                for _ in range(args.runs):
                    bench.append(llama_bench(bin_dir, model, args.threads, args.tokens))
                    ours.append(await stream_rate(backend, args.tokens))
                    reported.append(await server_rate(engine.url, engine.key, args.tokens))
                    native.append(await server_rate(url, None, args.tokens))
            finally:
                proc.terminate()
                proc.wait()
            b = median(bench)
            rows += [f"| (a) decode, llama-bench -p 0 -n {args.tokens} (native build) | "
                     f"{b:.1f} tok/s | 1.00 |",
                     f"| (a) decode, embedded tier via the API (client-side) | "
                     f"{median(ours):.1f} tok/s | {median(ours) / b:.2f} |",
                     f"| (a) decode, embedded engine's own timings | "
                     f"{median(reported):.1f} tok/s | {median(reported) / b:.2f} |",
                     f"| (a) decode, llama-server -np 4 built natively, its own timings | "
                     f"{median(native):.1f} tok/s | {median(native) / b:.2f} |"]
        if "b" in only:
            proc, url = start_llama_server(bin_dir, model, args.threads, 4, 2048)
            try:
                mine, theirs, t_idle, t_busy = [], [], [], []
                for _ in range(args.runs):
                    theirs.append(await aggregate(url, None, 4, args.tokens))
                    mine.append(await aggregate(engine.url, engine.key, 4, args.tokens))
                    t_idle.append(await ttft(engine.url, engine.key, 0, args.tokens))
                    t_busy.append(await ttft(engine.url, engine.key, 3, args.tokens))
            finally:
                proc.terminate()
                proc.wait()
            rows += [f"| (b) 4 streams, llama-server -np 4 (native build) | "
                     f"{median(theirs):.1f} tok/s | 1.00 |",
                     f"| (b) 4 streams, embedded engine | {median(mine):.1f} tok/s | "
                     f"{median(mine) / median(theirs):.2f} |",
                     f"| (b) TTFT of a short request, idle / 3 streams busy | "
                     f"{median(t_idle) * 1000:.0f} ms / {median(t_busy) * 1000:.0f} ms | "
                     f"{median(t_busy) / median(t_idle):.2f}× |"]
        if "c" in only:
            one, two = [], []
            for _ in range(args.runs):
                one.append(await aggregate(engine.url, engine.key, 2, args.tokens))
                two.append(await two_processes(home, args.threads, args.tokens))
            rows += [f"| (c) one process, 2 streams | {median(one):.1f} tok/s | 1.00 |",
                     f"| (c) two processes, 1 stream each, one shared engine | "
                     f"{median(two):.1f} tok/s | {median(two) / median(one):.2f} |"]
        if "d" in only:
            idle = rss_kb(engine.pid)
            task = asyncio.create_task(aggregate(engine.url, engine.key, 4, args.tokens * 2))
            await asyncio.sleep(2.0)
            serving = rss_kb(engine.pid)
            await task
            starts = []
            for _ in range(args.runs):
                await backend.stop_engine()
                t0 = time.perf_counter()
                await backend.warm()
                starts.append(time.perf_counter() - t0)
            engine = await backend.warm()
            rows += [f"| (d) engine child RSS idle / serving 4 streams | {idle / 1024:.0f} MB /"
                     f" {serving / 1024:.0f} MB | |",
                     f"| (d) engine start (spawn, load, listen; file in page cache) | "
                     f"{median(starts) * 1000:.0f} ms (min {min(starts) * 1000:.0f}) | |"]
        if "e" in only:
            cached: list[float] = []
            uncached: list[float] = []
            turns = [{"role": "user", "content": f"Question {i}: tell me about the sea."}
                     for i in range(5)]
            history: list[dict[str, str]] = []
            async with httpx.AsyncClient(timeout=600) as client:
                headers = {"authorization": f"Bearer {engine.key}"}
                for turn in turns[:4]:
                    history.append(turn)
                    r = await client.post(engine.url + "/v1/chat/completions", headers=headers,
                                          json={"messages": history, "max_tokens": 48,
                                                "temperature": 0})
                    history.append(r.json()["choices"][0]["message"])
                history.append(turns[4])
                for _ in range(args.runs):
                    for flag, out in ((True, cached), (False, uncached)):
                        t0 = time.perf_counter()
                        await client.post(engine.url + "/v1/chat/completions", headers=headers,
                                          json={"messages": history, "max_tokens": 1,
                                                "cache_prompt": flag, "id_slot": 0})
                        out.append(time.perf_counter() - t0)
            rows += [f"| (e) turn 5 first token, prompt cache on / off | "
                     f"{median(cached) * 1000:.0f} ms / {median(uncached) * 1000:.0f} ms | "
                     f"{median(uncached) / median(cached):.2f}× faster |"]
    finally:
        await backend.stop_engine()
    print("| what | median | ratio |\n|---|---|---|")
    print("\n".join(rows))
    print(f"\nLoad average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
