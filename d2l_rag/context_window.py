"""Fitting a fallback document into the model's window: whole if it fits, else the most similar passages."""

from __future__ import annotations

from d2l_rag.generation import Generator

__all__ = ["fit_context"]

_MARGIN_TOKENS = 32  # chat markup around the context


def fit_context(generator: Generator, question: str, text: str, max_passages: int) -> tuple[str, str]:
    """(context, "full") when the text fits next to the question, else (passages, "passages").

    Passages are ranked by BM25 against the question, taken best first while they fit, then put back in
    document order so the model reads them as they were written.
    """
    tokenizer = generator.lm.tokenizer
    budget = (
        generator.lm.context_window
        - len(generator.prompt_ids(question))
        - generator.config.max_new_tokens
        - _MARGIN_TOKENS
    )
    if len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= budget:
        return text, "full"
    from d2l_rag.baselines.retrievers import BM25ChunkRetriever
    from d2l_rag.text_chunks import split_passages

    passages = split_passages(text)
    ranked = BM25ChunkRetriever().retrieve(question, text, k=len(passages))
    chosen: list[str] = []
    used = 0
    for passage in ranked:
        cost = len(tokenizer(passage, add_special_tokens=False)["input_ids"]) + 2
        if used + cost > budget or len(chosen) >= max_passages:
            continue
        chosen.append(passage)
        used += cost
    order = {p: i for i, p in enumerate(passages)}
    chosen.sort(key=lambda p: order.get(p, 0))
    return "\n\n".join(chosen), "passages"
