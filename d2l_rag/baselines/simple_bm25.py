"""BM25 in plain Python, for machines without `bm25s` (the benchmark's GPU hosts), with the same ranking rules.

Lucene's BM25 (bm25s' default method, k1=1.5, b=0.75): idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and
tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len)). Tokens are lower-cased words minus English stopwords.
Ties keep document order, as `BM25Index` does, so both backends rank the same way on the same text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from d2l_rag.errors import InvalidInputError

__all__ = ["SimpleBM25Index", "bm25_tokens"]

_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's (and bm25s') default token pattern
# The English stopword list of Lucene's StandardAnalyzer, which bm25s uses for "en".
_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "  # noqa: SIM905
    "this to was will with".split()
)


def bm25_tokens(text: str) -> list[str]:
    return [t for t in _WORD.findall(text.lower()) if t not in _STOPWORDS]


class SimpleBM25Index:
    """A BM25 index over a fixed list of texts; `top_k(query, k)` like `d2l_rag.routing.BM25Index`."""

    def __init__(self, texts: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        if not texts:
            raise InvalidInputError("cannot build a BM25 index over 0 texts")
        self.k1, self.b = k1, b
        self._docs = [Counter(bm25_tokens(t)) for t in texts]
        self._lengths = [sum(c.values()) for c in self._docs]
        self._avg_len = max(sum(self._lengths) / len(self._docs), 1e-9)
        df = Counter(term for doc in self._docs for term in doc)
        n = len(self._docs)
        self._idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}

    def __len__(self) -> int:
        return len(self._docs)

    def scores(self, query: str) -> list[float]:
        terms = [t for t in bm25_tokens(query) if t in self._idf]
        out = []
        for doc, length in zip(self._docs, self._lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self._avg_len)
            out.append(sum(self._idf[t] * doc[t] * (self.k1 + 1) / (doc[t] + norm) for t in terms if t in doc))
        return out

    def top_k(self, query: str, k: int) -> list[int]:
        scores = self.scores(query)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return order[:k]
