"""What abandoned streams cost the next request (issue 26 §2).

    .venv/bin/python bench/bench_abandon.py [--abandon 30] [--tokens 300] [--threads 2]

Three processes: llama.cpp's server (tests/support/llama_server.py, the bundled
SmolLM2-135M, one slot, 2,048 tokens of context), `localinfer serve` in front of it
(embedded tier off), and this script. Figures:

1. idle: the median latency of 5 sequential non-streamed chats (16 tokens).
2. N clients each send a long-prompt stream (~1,000 prompt tokens, end-of-generation
   forbidden, ``--tokens`` to generate) and hang up before the first byte.
3. next: the latency of the very next chat, and its ratio to idle (goal ≤ 2).
4. how long until llama.cpp's /slots shows every slot idle.

Before the fix the N streams ran to their end upstream one after another (the issue
measured 216.6 s for the next request with 30 of them).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from localinfer.assets.bundled import bundled_model_path  # noqa: E402
from localinfer.assets.gguf import validate_gguf  # noqa: E402

PROMPT = "Summarise the following notes. " + " ".join(
    f"Note {i}: the lighthouse keeper logged wind, rain and passing ships." for i in range(80))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def chat_latency(gateway: str) -> float:
    started = time.perf_counter()
    reply = httpx.post(gateway + "/v1/chat/completions", timeout=600, trust_env=False, json={
        "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16,
        "temperature": 0})
    reply.raise_for_status()
    return time.perf_counter() - started


def abandon(gateway: str, body: bytes) -> None:
    url = httpx.URL(gateway)
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)


def busy(server: str) -> int:
    slots = httpx.get(server + "/slots", timeout=30, trust_env=False).json()
    return sum(1 for slot in slots if slot.get("is_processing"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--abandon", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = bundled_model_path()
    eos = validate_gguf(model).metadata["tokenizer.ggml.eos_token_id"]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as home:
        try:
            sport, gport = free_port(), free_port()
            server, gateway = f"http://127.0.0.1:{sport}", f"http://127.0.0.1:{gport}"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.support.llama_server", "-m", str(model),
                 "--port", str(sport), "-c", "2048", "-t", str(args.threads), "--no-webui"],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_up(server + "/health")
            env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
            env.update(LOCALINFER_HOME=home, LOCALINFER_EMBEDDED="off",
                       LOCALINFER_SCAN_DEFAULT_PORTS="false", LOCALINFER_SERVERS=server)
            procs.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "localinfer"), "serve", "--port", str(gport)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_up(gateway + "/health")
            chat_latency(gateway)  # warm: discovery, the model's first run
            idle = statistics.median(chat_latency(gateway) for _ in range(5))
            started = time.perf_counter()
            for i in range(args.abandon):
                abandon(gateway, orjson.dumps({
                    "stream": True, "max_tokens": args.tokens, "temperature": 1.0,
                    "logit_bias": {str(eos): -100.0},
                    "messages": [{"role": "user", "content": f"{i}. {PROMPT}"}]}))
            after = chat_latency(gateway)
            while busy(server):
                time.sleep(0.05)
            freed = time.perf_counter() - started
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(timeout=30)
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}; "
          f"command: `.venv/bin/python bench/bench_abandon.py --abandon {args.abandon} "
          f"--tokens {args.tokens} --threads {args.threads}`\n")
    print("| abandoned streams | idle chat (median of 5) | next chat | ratio | slots idle after |")
    print("|---|---|---|---|---|")
    print(f"| {args.abandon} | {idle:.2f} s | {after:.2f} s | {after / idle:.2f} × | "
          f"{freed:.1f} s |")


if __name__ == "__main__":
    main()
