"""RAG: split the document into passages, put the top-k passages for the question in the prompt.

The standard LangChain / LlamaIndex recipe that d2l-rag replaces: a recursive character splitter, an
all-MiniLM-L6-v2 vector index (or BM25), top-k "stuffed" into the prompt in ranking order.
"""

from __future__ import annotations

import time

from d2l_rag.baselines.base import BaselineAnswer, DocumentCache, check_document
from d2l_rag.baselines.in_context import truncate_to_window
from d2l_rag.baselines.retrievers import BM25ChunkRetriever, ChunkRetriever, MiniLMChunkRetriever, minilm_available
from d2l_rag.config import GenerationConfig
from d2l_rag.errors import InvalidInputError
from d2l_rag.generation import Generator
from d2l_rag.model.base import FrozenLM

__all__ = ["RAGBaseline", "make_retriever"]


def make_retriever(kind: str = "auto", max_chars: int = 1200, overlap_chars: int = 150) -> tuple[ChunkRetriever, str]:
    """(retriever, its name): "minilm", "bm25", or "auto" = MiniLM when its packages are installed, else BM25."""
    if kind not in ("auto", "minilm", "bm25"):
        raise InvalidInputError(f"retriever must be 'auto', 'minilm' or 'bm25', got {kind!r}")
    if kind == "minilm" or (kind == "auto" and minilm_available()):
        return MiniLMChunkRetriever(max_chars=max_chars, overlap_chars=overlap_chars), "minilm"
    return BM25ChunkRetriever(max_chars=max_chars, overlap_chars=overlap_chars), "bm25"


class RAGBaseline:
    """Top-`k` passages (default 3) of the document as the context, then the question.

    The first question about a document pays for indexing it (splitting, and embedding every passage for MiniLM);
    that cost is `prepare_seconds`, and later questions pay only for embedding the query and ranking.

    Example:
        >>> rag = RAGBaseline(lm, retriever="bm25", k=3)
        >>> rag.answer("Who founded the Vellum Society?", long_text).text
    """

    name = "rag"

    def __init__(
        self,
        lm: FrozenLM,
        retriever: ChunkRetriever | str = "auto",
        k: int = 3,
        generation: GenerationConfig | None = None,
        max_chars: int = 1200,
        overlap_chars: int = 150,
    ) -> None:
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        if isinstance(retriever, str):
            self.retriever, self.retriever_name = make_retriever(retriever, max_chars, overlap_chars)
        else:
            self.retriever, self.retriever_name = retriever, type(retriever).__name__
        self.k = k
        self.generator = Generator(lm, generation)
        self._seen: DocumentCache[None] = DocumentCache(max_documents=64)

    def answer(self, question: str, document: str) -> BaselineAnswer:
        check_document(document)
        prepare_s = 0.0
        _, first = self._seen.get_or_build(document, lambda: None)
        if first:  # index the document (and answer one query) before timing the question itself
            start = time.perf_counter()
            self.retriever.retrieve(question, document, k=self.k)
            prepare_s = time.perf_counter() - start
        start = time.perf_counter()
        passages = self.retriever.retrieve(question, document, k=self.k)
        retrieve_s = time.perf_counter() - start
        context, kept, total = truncate_to_window(self.generator, question, "\n\n".join(passages))
        notes = [f"retriever: {self.retriever_name}, top {len(passages)} of k={self.k} passages"]
        if kept < total:
            notes.append(f"truncated to window: kept the first {kept} of {total} passage tokens")
        out = self.generator.answer(question, context=context or None)
        return BaselineAnswer(
            out.text, "rag", out.prompt_tokens, retrieve_s + out.seconds, out.completion_tokens, prepare_s, tuple(notes)
        )
