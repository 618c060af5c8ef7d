"""Questions about real prose, written by the base model itself.

Templated questions cover facts; these cover what the model would naturally ask of a text. The model is passed
in as a plain `generate(prompts) -> replies` callable, so this module needs no model code and tests need no model.
The answer is left empty: the teacher (the model with the passage in context) answers it during pool building.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from d2l_rag.training.examples import QAExample

__all__ = ["PROMPTS", "generate_prose_questions", "parse_question"]

PROMPTS = (  # one per question asked of a passage: greedy decoding would repeat itself on one prompt
    "Read the text and write one short question that can be answered from it. Reply with only the question.",
    "Read the text and write one short question about a specific detail in it. Reply with only the question.",
    "Read the text and write one short question about its main point. Reply with only the question.",
    "Read the text and write one short question whose answer is a name, a number or a term from it. "
    "Reply with only the question.",
)
MAX_QUESTION_CHARS = 200
_PREFIX = re.compile(r"^(?:[-*•>]+|\d+[.)]|q(?:uestion)?\s*\d*\s*[:.)-])\s*", re.IGNORECASE)


def parse_question(reply: str) -> str | None:
    """The first line of `reply` that ends in '?', cleaned of list markers, "Question:" and quotes; else None."""
    for line in reply.strip().splitlines():
        line = _PREFIX.sub("", line.strip(" \t*_")).strip(" \t*_\"'“”")
        if line.endswith("?") and len(line.split()) >= 3:
            return line if len(line) <= MAX_QUESTION_CHARS else None
    return None


def generate_prose_questions(
    passages: Sequence[str],
    generate: Callable[[list[str]], list[str]],
    per_passage: int = 2,
    max_passage_chars: int = 6000,
) -> list[QAExample]:
    """Up to `per_passage` distinct self-generated questions per passage, in one `generate` call.

    The prompt shows at most `max_passage_chars` of the passage (small models have small windows), so questions
    are about its beginning; the example's document is the whole passage. Replies without a usable question are
    dropped, as are repeats within a passage.
    """
    if not 1 <= per_passage <= len(PROMPTS):
        raise ValueError(f"per_passage must be in [1, {len(PROMPTS)}], got {per_passage}")
    prompts = [f"{PROMPTS[k]}\n\nText:\n{p[:max_passage_chars]}" for p in passages for k in range(per_passage)]
    replies = generate(prompts) if prompts else []
    if len(replies) != len(prompts):
        raise ValueError(f"generate returned {len(replies)} replies for {len(prompts)} prompts")
    examples = []
    for i, passage in enumerate(passages):
        seen: set[str] = set()
        for k in range(per_passage):
            question = parse_question(replies[i * per_passage + k])
            if question is None or question.lower() in seen:
                continue
            seen.add(question.lower())
            examples.append(QAExample(passage, question, "", "prose", None, {"prompt": str(k)}))
    return examples
