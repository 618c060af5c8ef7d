"""The unit of training and evaluation data: a document, a question about it, and the reference answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["QAExample", "Split"]

Split = Literal["train", "heldout"]


@dataclass(frozen=True)
class QAExample:
    """The teacher reads `document` + `question`; the student reads `question` with the document's adapter."""

    document: str
    question: str
    answer: str  # reference answer, derivable from the document text ("" when the teacher decides)
    kind: str  # "needle" | "facts" | "prose" | "negative"
    depth: float | None = None  # relative position in [0, 1) of the answer-bearing sentence
    meta: Mapping[str, str] = field(default_factory=dict)
