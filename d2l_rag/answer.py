"""What `DocumentInternalizer` returns: the answer text plus how it was produced."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from d2l_rag.grounding import SpellingCorrection

__all__ = ["AnswerStream", "InternalizedAnswer", "Mode"]

Mode = Literal["adapter", "in_context", "hybrid", "no_document"]


@dataclass(frozen=True)
class InternalizedAnswer:
    """An answer and its provenance, for `response_metadata` in the integrations."""

    text: str
    doc_ids: tuple[str, ...]
    mode: Mode  # "adapter": no document in the prompt; "in_context": fallback; "hybrid": both
    prompt_tokens: int
    completion_tokens: int
    timings: Mapping[str, float] = field(default_factory=dict)  # adapter_s, generate_s, total_s
    adapter_rank: int = 0
    fallback_reason: str | None = None  # why a document was answered in context
    context: Literal["full", "passages"] | None = None  # "passages": too long, most similar passages only
    routed: bool = False  # documents chosen by the router
    spelling_corrections: tuple[SpellingCorrection, ...] = ()  # words of the answer given the document's spelling

    def metadata(self) -> dict[str, object]:
        return {
            "doc_ids": list(self.doc_ids),
            "mode": self.mode,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "timings": dict(self.timings),
            "adapter_rank": self.adapter_rank,
            "fallback_reason": self.fallback_reason,
            "context": self.context,
            "routed": self.routed,
            "spelling_corrections": [asdict(c) for c in self.spelling_corrections],
        }


class AnswerStream:
    """Iterate for text pieces; afterwards `.answer` holds the complete `InternalizedAnswer`."""

    def __init__(self, pieces: Iterator[str], finish: Callable[[str], InternalizedAnswer]) -> None:
        self._pieces = pieces
        self._finish = finish
        self.answer: InternalizedAnswer | None = None

    def __iter__(self) -> Iterator[str]:
        text = []
        for piece in self._pieces:
            text.append(piece)
            yield piece
        self.answer = self._finish("".join(text))
