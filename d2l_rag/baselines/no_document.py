"""The floor: the base model answers from what it already knows, with no document at all."""

from __future__ import annotations

from d2l_rag.baselines.base import BaselineAnswer, check_document
from d2l_rag.config import GenerationConfig
from d2l_rag.generation import Generator
from d2l_rag.model.base import FrozenLM

__all__ = ["NoDocumentBaseline"]


class NoDocumentBaseline:
    """Ignores the document (still checked, so bad input fails the same way for every baseline)."""

    name = "no_document"

    def __init__(self, lm: FrozenLM, generation: GenerationConfig | None = None) -> None:
        self.generator = Generator(lm, generation)

    def answer(self, question: str, document: str) -> BaselineAnswer:
        check_document(document)
        out = self.generator.answer(question)
        return BaselineAnswer(out.text, "no_document", out.prompt_tokens, out.seconds, out.completion_tokens)
