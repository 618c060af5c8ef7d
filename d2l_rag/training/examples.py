"""The unit of training and evaluation data: a document, a question about it, and the reference answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["QAExample", "Split"]

Split = Literal["train", "heldout"]


@dataclass(frozen=True)
class QAExample:
    """The teacher reads `document` + `question`; the student reads `question` with the document's adapter.

    `teacher_document` is what the teacher reads instead when `document` is longer than its context window
    (a shorter haystack with the same needle at the same depth): the student still internalizes the whole
    document, so composition over many chunks is trained on documents no teacher could read at once.
    """

    document: str
    question: str
    answer: str  # reference answer, derivable from the document text ("" when the teacher decides)
    kind: str  # "needle" | "facts" | "prose" | "negative"
    depth: float | None = None  # relative position in [0, 1) of the answer-bearing sentence
    meta: Mapping[str, str] = field(default_factory=dict)
    teacher_document: str | None = None

    @property
    def teacher_context(self) -> str:
        return self.document if self.teacher_document is None else self.teacher_document
