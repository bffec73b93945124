"""Where a decode step of the embedded engine spends its time: py-spy samples the worker
process's generating thread (native frames included) while it generates, and the samples
are grouped by the innermost frame that names a known cost.

    pip install py-spy   # not a dependency: a profiling tool, run by hand
    .venv/bin/python bench/profile_embedded.py [--seconds 15] [--threads 2]

Prints a markdown table (share of samples per cost) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from localinfer.assets.bundled import bundled_model_path
from localinfer.assets.gguf import validate_gguf
from localinfer.backends.embedded import EmbeddedBackend
from localinfer.settings import Settings
from localinfer.types import ChatRequest

# Innermost match wins: a sample is charged to the deepest frame naming one of these.
COSTS: list[tuple[str, tuple[str, ...]]] = [
    ("llama_decode (the model's forward pass)", ("llama_decode",)),
    ("llama_sampler_sample (sampler chain over the vocabulary)", ("llama_sampler_sample",)),
    ("llama_token_to_piece (detokenising)", ("llama_token_to_piece",)),
    ("writing events to the parent (pipe)", ("send (", "write (", "flush (")),
]
# The worker's stdin reader thread blocks on a read all the time: not a cost of decoding.
READER = "read_commands"


def charge(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, needles in COSTS:
            if any(n in frame for n in needles):
                return name
    for frame in reversed(frames):
        if "generate.py" in frame or "worker.py" in frame:
            return "Python in our loop (generate.py / worker.py itself)"
    return "other"


async def generate(engine: EmbeddedBackend, eos: int, until: float) -> int:
    story = "Write a long story about a lighthouse keeper and the sea."
    n = 0
    while asyncio.get_running_loop().time() < until:
        request = ChatRequest(messages=[{"role": "user", "content": story}],  # type: ignore[list-item]
                              max_tokens=512, temperature=0.8, logit_bias={str(eos): -100.0})
        reply = await engine.chat(request, "default")
        n += reply.usage.completion_tokens if reply.usage else 0
    return n


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    eos = int(validate_gguf(bundled_model_path()).metadata["tokenizer.ggml.eos_token_id"])
    engine = EmbeddedBackend(Settings(embedded_threads=args.threads))
    await engine.warm()
    pid = engine.worker_pid
    assert pid is not None
    out = Path(tempfile.mkdtemp()) / "samples.txt"
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + args.seconds + 3
        gen = asyncio.create_task(generate(engine, eos, until))
        await asyncio.sleep(1.0)  # past the first prompt
        record = await asyncio.create_subprocess_exec(
            spy, "record", "--pid", str(pid), "--native", "--rate", "250", "--format", "raw",
            "--duration", str(int(args.seconds)), "--output", str(out), "--threads",
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = await record.communicate()
        tokens = await gen
    finally:
        await engine.aclose()
    if not out.exists():
        print(err.decode(errors="replace"), file=sys.stderr)
        return 1
    shares: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit() and READER not in stack:
            shares[charge(stack)] += int(count)
    total = sum(shares.values()) or 1
    print(f"Command: `.venv/bin/python bench/profile_embedded.py --seconds {args.seconds:g} "
          f"--threads {args.threads}`; load average {os.getloadavg()[0]:.2f}; "
          f"{total} samples of the worker's generating thread; "
          f"{tokens} tokens generated\n")
    print("| cost | share of samples |\n|---|---|")
    for name, n in shares.most_common():
        print(f"| {name} | {100 * n / total:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
