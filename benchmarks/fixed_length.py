"""Generation of exactly `n` new tokens (EOS suppressed), so two methods are timed on the same amount of work.

Answers of different lengths would otherwise decide a latency ratio: an adapter that rambles for 48 tokens looks
slower than a context that answers in 8. Built from the library's public pieces: the chat prompt of `Generator`,
per-row LoRA with `Generator.adapter_context`, and plain `generate`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.generation import GREEDY, Generator, left_pad

__all__ = ["generate_fixed"]


@torch.no_grad()
def generate_fixed(
    generator: Generator,
    questions: Sequence[str],
    new_tokens: int,
    adapters: Sequence[DocumentAdapter | None] | None = None,
    contexts: Sequence[str | None] | None = None,
) -> int:
    """Generate `new_tokens` tokens for every row (left-padded batch); returns the prompt length of the batch."""
    lm = generator.lm
    n = len(questions)
    adapters = list(adapters) if adapters is not None else [None] * n
    contexts = list(contexts) if contexts is not None else [None] * n
    prompts = [generator.prompt_ids(q, c) for q, c in zip(questions, contexts, strict=True)]
    pad = lm.tokenizer.pad_token_id
    ids, mask = left_pad(prompts, pad)
    with generator.adapter_context(adapters):
        lm.model.generate(
            input_ids=ids.to(lm.device),
            attention_mask=mask.to(lm.device),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            **GREEDY,
            pad_token_id=pad,
        )
    return ids.shape[1]
