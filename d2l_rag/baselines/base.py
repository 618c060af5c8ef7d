"""What every baseline returns and the one method it implements: `answer(question, document)`.

D2L and the approaches users would pick instead (document in the prompt, RAG, per-document context distillation,
no document at all) sit behind this interface, so the benchmark runs them side by side on the same questions and
compares like with like. Each baseline keeps its per-document work (an index, an adapter) cached by the document's
sha256, and reports that work's cost once, as `prepare_seconds`, on the answer that triggered it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

from d2l_rag.errors import InvalidInputError

__all__ = ["Baseline", "BaselineAnswer", "DocumentCache", "check_document"]

T = TypeVar("T")


@dataclass(frozen=True)
class BaselineAnswer:
    """An answer and what it cost; `notes` says where the baseline bent the rules (e.g. "truncated to window")."""

    text: str
    mode: str  # "in_context" | "rag" | "standard_cd" | "no_document" | "d2l"
    prompt_tokens: int
    seconds: float  # generating this answer
    completion_tokens: int = 0
    prepare_seconds: float = 0.0  # per-document work done for this call (0.0 when it was cached)
    notes: tuple[str, ...] = ()


@runtime_checkable
class Baseline(Protocol):
    """Answers a question about a document; `name` labels it in reports."""

    name: str

    def answer(self, question: str, document: str) -> BaselineAnswer: ...


class DocumentCache(Generic[T]):
    """Per-document state (index, adapter) keyed by the sha256 of the text: a thread-safe LRU of `max_documents`."""

    def __init__(self, max_documents: int = 16) -> None:
        if max_documents < 1:
            raise InvalidInputError(f"max_documents must be >= 1, got {max_documents}")
        self.max_documents = max_documents
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, document: str, build: Callable[[], T]) -> tuple[T, bool]:
        """(value, built): `built` is True when `build` ran for this call."""
        key = hashlib.sha256(document.encode("utf-8")).hexdigest()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key], False
        value = build()  # outside the lock: building can be slow, and a duplicate build is harmless
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_documents:
                self._items.popitem(last=False)
        return value, True

    def __len__(self) -> int:
        return len(self._items)


def check_document(document: object) -> str:
    if not isinstance(document, str):
        raise InvalidInputError(f"document must be str, got {type(document).__name__}")
    if not document.strip():
        raise InvalidInputError("document is empty or whitespace only")
    return document
