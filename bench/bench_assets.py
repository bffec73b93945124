"""Model asset costs: what a first load and a warm load take, without the network.

    .venv/bin/python bench/bench_assets.py [--size-mb 256] [--runs 3]

1. Pull over loopback: a random file of --size-mb served by ``python -m http.server``
   (its own process, so it does not share our GIL) on 127.0.0.1, pulled with sha256
   verification into a fresh cache (download + hash + fsync + atomic commit).
2. Resolve the bundled SmolLM2 GGUF (package source, used in place): cold (first
   hash check of 98 MB in a fresh LOCALINFER_HOME) and warm (size+mtime stamp hit).
3. `cache verify`: re-hash of the pulled file (hashing rate).
4. disclose() of an uncached catalog model (size, time, disk, RAM; no network).

Prints a markdown table with the machine and the command. Results go to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.serve import free_port  # noqa: E402

from localinfer.assets import ModelCache, disclose, pull, resolve  # noqa: E402
from localinfer.settings import Settings  # noqa: E402

HOMES: list[str] = []


def fresh_settings() -> Settings:
    home = tempfile.mkdtemp(prefix="li-bench-")
    HOMES.append(home)
    os.environ["LOCALINFER_HOME"] = home
    return Settings(home=Path(home))


def wait_for(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.head(url, timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []

    size = args.size_mb * 1_000_000
    data = random.Random(42).randbytes(size)
    sha = hashlib.sha256(data).hexdigest()
    www = tempfile.mkdtemp(prefix="li-bench-www-")
    HOMES.append(www)
    (Path(www) / "bench.bin").write_bytes(data)
    del data
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", www],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/bench.bin"
    try:
        wait_for(url)
        pull_times: list[float] = []
        last = fresh_settings()
        for _ in range(args.runs):
            last = fresh_settings()
            pull_times.append(timed(functools.partial(pull, url, last, sha256=sha)))
    finally:
        server.terminate()
        server.wait()
    med = statistics.median(pull_times)
    rows.append((f"pull {args.size_mb} MB over loopback (download+sha256+commit)",
                 f"{med:.2f} s", f"{size / med / 1e6:.0f} MB/s"))

    cache = ModelCache.for_settings(last)
    verify = statistics.median(timed(cache.verify_all) for _ in range(args.runs))
    rows.append((f"cache verify ({args.size_mb} MB re-hash)", f"{verify:.2f} s",
                 f"{size / verify / 1e6:.0f} MB/s"))

    cold, warm = [], []
    for _ in range(args.runs):
        s = fresh_settings()
        cold.append(timed(functools.partial(resolve, "smollm2-135m-instruct", s)))
        warm.append(timed(functools.partial(resolve, "smollm2-135m-instruct", s,
                                            allow_download=False)))
    rows.append(("resolve bundled SmolLM2 (98 MB), cold: first hash check",
                 f"{statistics.median(cold) * 1000:.0f} ms", ""))
    rows.append(("resolve bundled SmolLM2, warm: stamp hit",
                 f"{statistics.median(warm) * 1000:.1f} ms", ""))

    s = fresh_settings()
    d = statistics.median(timed(lambda: disclose("llama-3.2-3b-instruct", s))
                          for _ in range(50))
    rows.append(("disclose llama-3.2-3b-instruct (no network)", f"{d * 1000:.1f} ms", ""))

    print(f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    print(f"Command: .venv/bin/python bench/bench_assets.py --size-mb {args.size_mb} "
          f"--runs {args.runs} (median of {args.runs}; disclose: median of 50)\n")
    print("| step | median | rate |\n|---|---|---|")
    for step, value, rate in rows:
        print(f"| {step} | {value} | {rate or '-'} |")


if __name__ == "__main__":
    try:
        main()
    finally:
        for h in HOMES:
            shutil.rmtree(h, ignore_errors=True)
