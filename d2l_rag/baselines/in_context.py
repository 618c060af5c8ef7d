"""The document in the prompt: the quality ceiling D2L aims for, and the cost it aims to remove.

A document longer than the window is cut to its first tokens that fit next to the question and the answer, and the
answer says so in its notes; it is never silently dropped or retrieved from, so this stays the plain recipe.
"""

from __future__ import annotations

from d2l_rag.baselines.base import BaselineAnswer, check_document
from d2l_rag.config import GenerationConfig
from d2l_rag.generation import Generator
from d2l_rag.model.base import FrozenLM

__all__ = ["InContextBaseline", "truncate_to_window"]

_MARKUP_MARGIN = 16  # the blank line between document and question, and tokenizer merges at the seam


def truncate_to_window(generator: Generator, question: str, document: str) -> tuple[str, int, int]:
    """(document cut to fit the window, tokens kept, tokens in the document); the head of the text is kept."""
    tokenizer = generator.lm.tokenizer
    ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    budget = generator.lm.context_window - len(generator.prompt_ids(question)) - generator.config.max_new_tokens
    budget -= _MARKUP_MARGIN
    if len(ids) <= budget:
        return document, len(ids), len(ids)
    kept = max(budget, 0)
    return tokenizer.decode(ids[:kept], skip_special_tokens=True), kept, len(ids)


class InContextBaseline:
    """Answer with `[document + question]` in the prompt, as `DocumentInternalizer`'s fallback and the teacher do.

    Example:
        >>> InContextBaseline(lm).answer("What is the code name?", "The code name of the project is Bluefin.").text
    """

    name = "in_context"

    def __init__(self, lm: FrozenLM, generation: GenerationConfig | None = None) -> None:
        self.generator = Generator(lm, generation)

    def answer(self, question: str, document: str) -> BaselineAnswer:
        context, kept, total = truncate_to_window(self.generator, question, check_document(document))
        notes = () if kept == total else (f"truncated to window: kept the first {kept} of {total} document tokens",)
        out = self.generator.answer(question, context=context)
        return BaselineAnswer(
            out.text, "in_context", out.prompt_tokens, out.seconds, out.completion_tokens, notes=notes
        )
