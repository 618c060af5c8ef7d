"""Fitting a fallback document into the model's window: whole if it fits, else the most similar passages."""

from __future__ import annotations

from d2l_rag.errors import InvalidInputError
from d2l_rag.generation import Generator

__all__ = ["fit_context"]

_MARGIN_TOKENS = 32  # chat markup around the context
_MAX_PASSAGE_CHARS = 1200  # the RAG baseline's passage size; smaller when the window is small
_MIN_PASSAGE_CHARS = 64


def fit_context(generator: Generator, question: str, text: str, max_passages: int) -> tuple[str, str]:
    """(context, "full") when the text fits next to the question, else (passages, "passages").

    Passages are sized so that `max_passages` of them fit the window, ranked by BM25 against the question, taken
    best first while they fit, then put back in document order so the model reads them as they were written.
    """
    if max_passages < 1:
        raise InvalidInputError(f"max_passages must be >= 1, got {max_passages}")
    tokenizer = generator.lm.tokenizer
    budget = (
        generator.lm.context_window
        - len(generator.prompt_ids(question))
        - generator.config.max_new_tokens
        - _MARGIN_TOKENS
    )
    if budget <= 0:
        raise InvalidInputError(
            f"the question and {generator.config.max_new_tokens} new tokens leave no room for the document in the "
            f"model window of {generator.lm.context_window} tokens"
        )
    tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    if tokens <= budget:
        return text, "full"
    from d2l_rag.baselines.retrievers import BM25ChunkRetriever

    chars_per_token = len(text) / tokens
    max_chars = int(budget * chars_per_token / max_passages)
    max_chars = max(_MIN_PASSAGE_CHARS, min(_MAX_PASSAGE_CHARS, max_chars))
    retriever = BM25ChunkRetriever(max_chars=max_chars, overlap_chars=max_chars // 8)
    ranked = retriever.retrieve(question, text, k=len(text))  # k >= the number of passages: rank them all
    chosen: list[str] = []
    used = 0
    for passage in ranked:
        cost = len(tokenizer(passage, add_special_tokens=False)["input_ids"]) + 2  # + the blank line between
        if used + cost <= budget and len(chosen) < max_passages:
            chosen.append(passage)
            used += cost
    if not chosen:  # even the best passage is too long (tokens far denser than average): cut it to the budget
        ids = tokenizer(ranked[0], add_special_tokens=False)["input_ids"][:budget]
        chosen = [tokenizer.decode(ids)]
    chosen.sort(key=text.find)  # passages are slices of the text: document order
    return "\n\n".join(chosen), "passages"
