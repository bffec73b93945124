"""Documents that never leave the machine: local embeddings, a local index, answers
with citations.

>>> from localinfer.rag import Index
>>> index = Index()
>>> index.add(["docs/"])
>>> print(index.ask("How do I rotate the API token?").answer)
"""

from ..backends.onnx.embedder import Embedder, OnnxEmbedder, load_default_embedder
from .ask import Answer
from .blocks import Block, DocumentError
from .chunking import Chunk, chunk_blocks
from .index import DEFAULT_COLLECTION, Index, IngestReport
from .search import Hit
from .store import DocumentRow, IndexUnusable

__all__ = [
    "DEFAULT_COLLECTION",
    "Answer",
    "Block",
    "Chunk",
    "DocumentError",
    "DocumentRow",
    "Embedder",
    "Hit",
    "Index",
    "IndexUnusable",
    "IngestReport",
    "OnnxEmbedder",
    "chunk_blocks",
    "load_default_embedder",
]
