"""Baselines behind one interface, `answer(question, document) -> BaselineAnswer`, for side-by-side benchmarks.

In-context (the ceiling), RAG (the recipe d2l-rag replaces), standard context distillation (per-document LoRA
training), no document (the floor), and D2L itself. Imported lazily: each pulls in only what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Baseline": "d2l_rag.baselines.base",
    "BaselineAnswer": "d2l_rag.baselines.base",
    "CDConfig": "d2l_rag.baselines.context_distillation",
    "D2LBaseline": "d2l_rag.baselines.d2l",
    "InContextBaseline": "d2l_rag.baselines.in_context",
    "NoDocumentBaseline": "d2l_rag.baselines.no_document",
    "RAGBaseline": "d2l_rag.baselines.rag",
    "StandardCDBaseline": "d2l_rag.baselines.context_distillation",
}

__all__ = [
    "Baseline",
    "BaselineAnswer",
    "CDConfig",
    "D2LBaseline",
    "InContextBaseline",
    "NoDocumentBaseline",
    "RAGBaseline",
    "StandardCDBaseline",
]

if TYPE_CHECKING:
    from d2l_rag.baselines.base import Baseline, BaselineAnswer
    from d2l_rag.baselines.context_distillation import CDConfig, StandardCDBaseline
    from d2l_rag.baselines.d2l import D2LBaseline
    from d2l_rag.baselines.in_context import InContextBaseline
    from d2l_rag.baselines.no_document import NoDocumentBaseline
    from d2l_rag.baselines.rag import RAGBaseline


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'd2l_rag.baselines' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
