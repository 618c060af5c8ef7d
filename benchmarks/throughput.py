"""Batching: 8 questions on 8 different documents (8 adapters, one batch) vs 8 questions on one document.

The rows have the same prompts in both batches (the same 8 questions) and generate the same number of tokens, so
the only difference is whether one adapter or eight are applied. This is what `DocumentInternalizer.ask_batch`
runs underneath (stacked per-row adapters through `apply_lora`), measured without its disk cache.
"""

from __future__ import annotations

from typing import Any

from benchmarks.fixed_length import generate_fixed
from benchmarks.latency import document_of_length
from benchmarks.timing import timed_runs
from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.generation import Generator
from d2l_rag.model.base import FrozenLM

__all__ = ["run_throughput"]


def run_throughput(
    lm: FrozenLM, builder: AdapterBuilder, generator: Generator, batch: int, doc_tokens: int, runs: int, new_tokens: int
) -> dict[str, Any]:
    docs = [document_of_length(lm, doc_tokens, seed=5000 + i) for i in range(batch)]
    adapters = [builder.build(document) for document, _ in docs]
    questions = [question for _, question in docs]
    mixed = timed_runs(lambda: generate_fixed(generator, questions, new_tokens, adapters=adapters), runs, lm.device)
    single = timed_runs(
        lambda: generate_fixed(generator, questions, new_tokens, adapters=[adapters[0]] * batch), runs, lm.device
    )
    return {
        "batch": batch,
        "document_tokens": doc_tokens,
        "new_tokens": new_tokens,
        "mixed_s": mixed.median_s,
        "single_s": single.median_s,
        "mixed_questions_per_s": batch / mixed.median_s,
        "single_questions_per_s": batch / single.median_s,
        "mixed_over_single": single.median_s / mixed.median_s,  # throughput ratio
        "adapter_ranks": sorted({a.rank for a in adapters}),
    }
