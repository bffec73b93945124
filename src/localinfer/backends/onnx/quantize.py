"""Derive an int8-compute model from the shipped embedding model, once, and cache it.

The shipped file stores int8 weights but dequantizes them to float32 before every
MatMul, so it computes in float32. ONNX Runtime's dynamic quantization (per-channel
int8 weights, activations quantized on the fly) runs the MatMuls with integer kernels:
several times faster on CPUs without AVX2/VNNI float paths, at cosine ~0.993 to the
float32 output (bench/bench_embeddings.py measures both against sentence-transformers).

The derived file is written next to the asset cache, named by the source's sha256 and
the recipe, atomically; a derivation whose output disagrees with float32 on probe
sentences is thrown away and float32 is used instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

RECIPE = "dynint8-perchannel-v1"
# Mean cosine to float32 on the probe sentences below which the derived model is refused.
MIN_AGREEMENT = 0.98
PROBES = [
    "The dome shutter is closed whenever the wind speed rises above forty kilometres.",
    "def late_fee_cents(invoice, paid): return round(invoice.amount * 0.02)",
    "Tomato seedlings are hardened off for ten days before planting.",
    "Receipts are uploaded within fourteen days of purchase.",
    "short",
]

Embed = Callable[[Path, list[str]], np.ndarray]  # (model file, texts) -> unit vectors


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def derived_path(source: Path, cache_dir: Path, source_sha256: str | None = None) -> Path:
    sha = source_sha256 or file_sha256(source)
    return cache_dir / f"{sha[:16]}-{RECIPE}.onnx"


def quantized_model(source: Path, cache_dir: Path, embed: Embed) -> Path | None:
    """The int8-compute model for ``source``: cached, or derived now. None when the
    quantizer is not installed (the ``onnx`` package) or its output disagrees."""
    target = derived_path(source, cache_dir)
    if target.is_file():
        return target
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp, _quiet_root_logger():
        folded = Path(tmp) / "float32.onnx"
        _fold_weights(source, folded)
        out = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(folded), str(out), per_channel=True, weight_type=QuantType.QInt8)
        agreement = float(np.mean(np.sum(embed(folded, PROBES) * embed(out, PROBES), axis=1)))
        if agreement < MIN_AGREEMENT:
            return None
        os.replace(out, target)  # atomic: a reader sees no file or the whole file
    return target


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantizer logs advice meant for model authors on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _fold_weights(source: Path, target: Path) -> None:
    """Let ONNX Runtime fold the int8-to-float32 weight dequantization into plain
    float32 weights (constant folding) and save that graph for the quantizer."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
