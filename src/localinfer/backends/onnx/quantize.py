"""Derive an int8-compute model from the shipped embedding model, once, and cache it.

The shipped file stores int8 weights but dequantizes them to float32 before every
MatMul, so it computes in float32. ONNX Runtime's dynamic quantization (per-channel
int8 weights, activations quantized on the fly, one scale per tensor) runs the MatMuls
with integer kernels, several times faster on CPUs without AVX-512/VNNI float paths.

One scale per activation tensor is what loses agreement: a few of MiniLM's hidden
channels are tens of times larger than the rest, and they set the scale for all
(measured: min cosine 0.980 to the original float32 weights; batch size 1 or keeping a
whole kind of MatMul in float did not reach 0.99). So before quantizing, each MatMul's
input is divided per channel by a smoothing factor and the weight's matching rows are
multiplied by it (SmoothQuant: ``x @ W == (x / s) @ (s * W)`` exactly in float),
with ``s = amax(x)**alpha / amax(W row)**(1 - alpha)`` from activation maxima
measured on fixed calibration sentences (calibration.py). The quantizer then sees
activations without outlier channels; the division is one elementwise Mul per MatMul
input (shared by Q, K and V).

Reproducible on one machine: the weights are dequantized with numpy (no optimizer
output) and the calibration texts are fixed, so deriving twice writes the same bytes
(the sha256 of every derived file is written beside it). Not across CPUs: another CPU
wrote other bytes with the same versions (most likely the activation maxima, computed
by ONNX Runtime's float kernels, which differ by instruction set), so no hash is
pinned; what holds everywhere is the agreement with float32 checked below and in
tests/test_embed_quality.py. The derived file is named by the source's sha256 and the
recipe, written atomically; one whose output disagrees with float32 on probe sentences
is thrown away and float32 is used instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .calibration import CALIBRATION_TEXTS
from .model import MAX_TOKENS
from .runtime import onnxruntime, quantization


@dataclass(frozen=True)
class Recipe:
    alpha: float | None  # SmoothQuant migration strength; None: no smoothing
    unsigned: bool = False  # uint8 weights (U8U8 kernels) instead of int8 (U8S8)
    reduce_range: bool = False  # 7-bit weights: no int16 saturation in AVX2 U8S8 kernels


RECIPES = {
    "dynint8-perchannel-v1": Recipe(alpha=None),  # the previous default, for the bench
    "smooth0.7-dynint8-v2": Recipe(alpha=0.7),
    "smooth0.7-dynu8u8-v2": Recipe(alpha=0.7, unsigned=True),
}
RECIPE = "smooth0.7-dynu8u8-v2"
OTHER_RECIPES = [r for r in RECIPES if r != RECIPE]
# Mean cosine to float32 on the probe sentences below which the derived model is refused.
MIN_AGREEMENT = 0.99
PROBES = [
    "The dome shutter is closed whenever the wind speed rises above forty kilometres.",
    "def late_fee_cents(invoice, paid): return round(invoice.amount * 0.02)",
    "Tomato seedlings are hardened off for ten days before planting.",
    "Receipts are uploaded within fourteen days of purchase.",
    "short",
]

Embed = Callable[[Path, list[str]], np.ndarray]  # (model file, texts) -> unit vectors
Array = npt.NDArray[np.float32]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def derived_path(source: Path, cache_dir: Path, source_sha256: str | None = None,
                 recipe: str = RECIPE) -> Path:
    sha = source_sha256 or file_sha256(source)
    return cache_dir / f"{sha[:16]}-{recipe}.onnx"


def quantized_model(source: Path, cache_dir: Path, embed: Embed) -> Path | None:
    """The int8-compute model for ``source``: cached, or derived now. None when the
    quantizer is not installed (the ``onnx`` package) or its output disagrees."""
    target = derived_path(source, cache_dir)
    if target.is_file():
        return target
    try:
        import onnx  # noqa: F401  (the quantizer needs it)

        quantization()
    except ImportError:
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        out = derive(source, Path(tmp) / "int8.onnx", RECIPE, float32=Path(tmp) / "fp32.onnx")
        agreement = float(np.mean(np.sum(embed(source, PROBES) * embed(out, PROBES), axis=1)))
        if agreement < MIN_AGREEMENT:
            return None
        target.with_suffix(".sha256").write_text(f"{file_sha256(out)}  {target.name}\n")
        os.replace(out, target)  # atomic: a reader sees no file or the whole file
    return target


def derive(source: Path, target: Path, recipe: str = RECIPE, *,
           float32: Path | None = None) -> Path:
    """Write the int8-compute model of ``source`` by ``recipe`` to ``target``."""
    import onnx

    quantizer = quantization()
    spec = RECIPES[recipe]
    with contextlib.ExitStack() as stack:
        if float32 is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=target.parent))
            float32 = Path(tmp) / "fp32.onnx"
        model = onnx.load(str(source))
        dequantize_weights(model)
        if spec.alpha is not None:
            smooth(model, activation_maxima(model, CALIBRATION_TEXTS), spec.alpha)
        onnx.save(model, str(float32))
        with _quiet_root_logger():
            quantizer.quantize_dynamic(
                str(float32), str(target), per_channel=True, reduce_range=spec.reduce_range,
                weight_type=(quantizer.QuantType.QUInt8 if spec.unsigned
                             else quantizer.QuantType.QInt8))
    return target


def dequantize_weights(model: Any) -> None:
    """Replace every ``Cast(int8) * scale`` weight by its float32 value, named as the
    Mul's output, so the quantizer sees plain float initializers (deterministically:
    numpy, not an optimizer pass)."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    for cast in [n for n in graph.node if n.op_type == "Cast" and n.input[0] in inits
                 and n.input[0].endswith("_q")]:
        base = cast.input[0][:-2]
        mul = next(n for n in graph.node if n.op_type == "Mul" and cast.output[0] in n.input)
        q = numpy_helper.to_array(inits[cast.input[0]]).astype(np.float32)
        value = q * numpy_helper.to_array(inits[base + "_scale"])
        graph.node.remove(cast)
        graph.node.remove(mul)
        graph.initializer.remove(inits[cast.input[0]])
        graph.initializer.remove(inits[base + "_scale"])
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32),
                                                         mul.output[0]))


def weighted_matmuls(model: Any) -> dict[str, list[Any]]:
    """MatMul nodes whose second input is a 2-D float weight, grouped by their input
    tensor (Q, K and V share one)."""
    inits = {i.name for i in model.graph.initializer}
    groups: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def activation_maxima(model: Any, texts: Sequence[str]) -> dict[str, Array]:
    """Per-channel max |x| of every weighted MatMul's input over ``texts``, run in
    float32 one text at a time (no padding in the statistics)."""
    import onnx
    from tokenizers import Tokenizer

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = list(weighted_matmuls(model))
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(Path(__file__).parents[2] / "assets" / "minilm"
                                        / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    inputs = {i.name for i in session.get_inputs()}
    maxima: dict[str, Array] = {}
    for text in texts:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        for name, value in zip(names, session.run(names, feed), strict=True):
            amax = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            maxima[name] = np.maximum(maxima.get(name, amax), amax)
    return maxima


def smooth(model: Any, maxima: dict[str, Array], alpha: float) -> None:
    """Divide each weighted MatMul input by ``s`` per channel (one inserted Mul) and
    multiply the weights' rows by ``s``: the same product in float, flatter
    activations for the int8 quantizer."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    for position, (name, nodes) in enumerate(weighted_matmuls(model).items()):
        weights = {n.input[1]: numpy_helper.to_array(inits[n.input[1]]) for n in nodes}
        w_max = np.max([np.abs(w).max(axis=1) for w in weights.values()], axis=0)
        factor = (np.clip(maxima[name], 1e-5, None) ** alpha
                  / np.clip(w_max, 1e-5, None) ** (1 - alpha)).astype(np.float32)
        for key, w in weights.items():
            graph.initializer.remove(inits[key])
            graph.initializer.append(numpy_helper.from_array(
                (w * factor[:, None]).astype(np.float32), key))
        inverse = f"smooth_{position}_inverse"
        smoothed = f"smooth_{position}_input"
        graph.initializer.append(numpy_helper.from_array((1 / factor).astype(np.float32),
                                                         inverse))
        producer = next((i for i, n in enumerate(graph.node) if name in n.output), -1)
        graph.node.insert(producer + 1, helper.make_node("Mul", [name, inverse], [smoothed],
                                                         name=f"smooth_{position}"))
        for node in nodes:
            node.input[0] = smoothed


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
