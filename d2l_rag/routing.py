"""Routing: pick the document(s) whose adapter should answer a question.

A router sees only a short *routing text* per document (title plus a summary or the first part of the text), the
same job as a LlamaIndex selector or a LangChain `RunnableLambda` in front of a chain. `BM25Router` is the default:
lexical, deterministic, no extra model. `CallableRouter` plugs in anything else (an embedding or LLM selector) and
checks what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from d2l_rag.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BM25Index", "BM25Router", "CallableRouter", "Router"]

RouteFn = Callable[[str, Mapping[str, str], int], list[str]]


@runtime_checkable
class Router(Protocol):
    """Anything that ranks documents for a question; `documents` maps doc id -> routing text."""

    def route(self, question: str, documents: Mapping[str, str], k: int = 1) -> list[str]:
        """The ids of the (at most) `k` documents best suited to answer `question`, best first."""
        ...


class BM25Index:
    """A BM25 index over a fixed list of texts (via `bm25s`), ranking them for a query.

    Shared by `BM25Router` (over routing texts) and the RAG baseline (over passages). Ranking is deterministic:
    equal scores keep the order of the texts, so a query with no known term returns the first `k` texts.
    """

    def __init__(self, texts: Sequence[str], stopwords: str | list[str] = "en") -> None:
        import bm25s  # lazy: keeps `import d2l_rag.routing` free of numpy/scipy work until an index is built

        if not texts:
            raise InvalidInputError("cannot build a BM25 index over 0 texts")
        self._stopwords = stopwords
        self._size = len(texts)
        corpus = bm25s.tokenize(list(texts), stopwords=stopwords, return_ids=False, show_progress=False)
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)

    def __len__(self) -> int:
        return self._size

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every text for `query`, shape `(len(self),)`; all zero when no query term is known."""
        import bm25s
        import numpy as np

        tokens = bm25s.tokenize([query], stopwords=self._stopwords, return_ids=False, show_progress=False)[0]
        ids = self._bm25.get_tokens_ids(tokens)
        if not ids:  # bm25s cannot score an empty query
            return np.zeros(self._size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)

    def top_k(self, query: str, k: int) -> list[int]:
        """Indices of the `k` best texts for `query` (all of them if `k` is larger), best first."""
        import numpy as np

        scores = self.scores(query)
        order = np.lexsort((np.arange(self._size), -scores))  # last key is primary: score desc, then position
        return [int(i) for i in order[:k]]


class BM25Router:
    """Default router: BM25 over the routing texts, no model needed.

    The index is cached for the last `documents` seen and rebuilt only when the ids or texts change, so routing
    many questions over one collection costs one tokenisation of the question each. Safe to share between threads:
    the cache is replaced by a single assignment, never mutated.

    Example:
        >>> router = BM25Router()
        >>> router.route("Who founded Brindle Works?", {"town": "Oakmere, a lakeside town.", "co": "Brindle Works ..."})
        ['co']
    """

    def __init__(self, stopwords: str | list[str] = "en") -> None:
        self.stopwords = stopwords
        self._cache: tuple[tuple[tuple[str, str], ...], list[str], BM25Index] | None = None

    def route(self, question: str, documents: Mapping[str, str], k: int = 1) -> list[str]:
        _check_route_args(documents, k)
        ids, index = self._index_for(documents)
        return [ids[i] for i in index.top_k(question, k)]

    def _index_for(self, documents: Mapping[str, str]) -> tuple[list[str], BM25Index]:
        key = tuple(documents.items())  # compares by identity first, so an unchanged mapping is cheap to check
        cache = self._cache
        if cache is not None and cache[0] == key:
            return cache[1], cache[2]
        ids = [doc_id for doc_id, _ in key]
        index = BM25Index([text for _, text in key], stopwords=self.stopwords)
        self._cache = (key, ids, index)
        return ids, index


class CallableRouter:
    """Wraps a function `(question, documents, k) -> ids` as a `Router`, and checks what it returns.

    The hook for embedding or LLM selectors (e.g. a LlamaIndex `LLMSingleSelector` behind a small lambda). Ids are
    de-duplicated and cut to `k`; an id that is not in `documents`, or an empty answer, is a clear error rather
    than a silent fall back to the wrong adapter.
    """

    def __init__(self, fn: RouteFn) -> None:
        if not callable(fn):
            raise InvalidInputError(f"CallableRouter needs a callable, got {type(fn).__name__}")
        self.fn = fn

    def route(self, question: str, documents: Mapping[str, str], k: int = 1) -> list[str]:
        _check_route_args(documents, k)
        returned = self.fn(question, documents, k)
        if isinstance(returned, str) or not isinstance(returned, Sequence):
            raise InvalidInputError(f"the routing function returned {returned!r}; expected a list of doc ids")
        unknown = [doc_id for doc_id in returned if doc_id not in documents]
        if unknown:
            raise InvalidInputError(
                f"the routing function returned unknown doc ids {unknown!r}; "
                f"expected ids among {_preview(list(documents))}"
            )
        ids = list(dict.fromkeys(returned))[:k]
        if not ids:
            raise InvalidInputError(f"the routing function returned no doc id for question {question!r}")
        return ids


def _check_route_args(documents: Mapping[str, str], k: int) -> None:
    if not documents:
        raise InvalidInputError("no documents to route to: the documents mapping is empty (add a document first)")
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")


def _preview(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(doc_id) for doc_id in ids[:limit])
    return f"[{shown}{', ...' if len(ids) > limit else ''}] ({len(ids)} documents)"
