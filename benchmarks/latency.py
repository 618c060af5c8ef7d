"""Costs by document length: internalize vs one plain forward, and per-question latency and memory, D2L vs in-context.

Every ratio is taken between numbers measured in this run, on the same document, as medians of `runs` timings.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import torch

from benchmarks.fixed_length import generate_fixed
from benchmarks.timing import median_peak_bytes, timed_interleaved, timed_runs
from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.baselines.in_context import truncate_to_window
from d2l_rag.generation import Generator
from d2l_rag.model.base import FrozenLM
from d2l_rag.model.chunking import tokenize_document
from d2l_rag.training.facts import make_facts_example
from d2l_rag.training.pool import token_counter

__all__ = ["document_of_length", "plain_forward", "run_latency"]

_MIN_PEAK_BYTES = 2**20  # below this a sampled-RSS peak is noise; a ratio to it would mean nothing


def document_of_length(lm: FrozenLM, tokens: int, seed: int) -> tuple[str, str]:
    """(document of about `tokens` tokens with planted held-out facts, a question about one of them)."""
    ex = make_facts_example(random.Random(seed), tokens, token_counter(lm), split="heldout", n_facts=4)
    return ex.document, ex.question


@torch.no_grad()
def plain_forward(lm: FrozenLM, ids: list[int]) -> None:
    """The floor of reading a document: one backbone pass over all its tokens, no cache, no LM head."""
    backbone = getattr(lm.model, lm.model.base_model_prefix, lm.model)
    backbone(input_ids=torch.tensor([ids], device=lm.device), use_cache=False)


def run_latency(
    lm: FrozenLM,
    builder: AdapterBuilder,
    generator: Generator,
    lengths: Sequence[int],
    runs: int,
    new_tokens: int,
    log=print,
) -> list[dict[str, Any]]:
    rows = []
    for i, length in enumerate(lengths):
        document, question = document_of_length(lm, length, seed=1000 + i)
        ids = tokenize_document(lm.tokenizer, document)
        row: dict[str, Any] = {"target_tokens": length, "document_tokens": len(ids), "new_tokens": new_tokens}
        log(f"  latency: {len(ids)}-token document")
        build_fn = partial(builder.build, document)
        if len(ids) <= lm.context_window:  # the ratio's two sides in turn, so load drifting on the host hits both
            fwd, build = timed_interleaved([partial(plain_forward, lm, ids), build_fn], runs, lm.device)
            row["forward_s"] = fwd.median_s
        else:
            build = timed_interleaved([build_fn], runs, lm.device)[0]
            row["forward_s"] = None
        build = replace(build, peak_bytes=median_peak_bytes(build_fn, runs, lm.device))
        adapter = build.result
        row.update(
            internalize_s=build.median_s,
            internalize_runs_s=list(build.runs_s),
            internalize_peak_bytes=build.peak_bytes,
            adapter_rank=adapter.rank,
            adapter_bytes=adapter.nbytes,
            chunks=adapter.chunk_count,
        )
        row["internalize_over_forward"] = build.median_s / row["forward_s"] if row["forward_s"] else None

        d2l = timed_runs(
            lambda q=question, a=adapter: generate_fixed(generator, [q], new_tokens, adapters=[a]),
            runs,
            lm.device,
            memory=True,
        )
        context, kept, total = truncate_to_window(generator, question, document)
        ic = timed_runs(
            lambda q=question, c=context: generate_fixed(generator, [q], new_tokens, contexts=[c]),
            runs,
            lm.device,
            memory=True,
        )
        row.update(
            d2l_question_s=d2l.median_s,
            d2l_prompt_tokens=d2l.result,
            d2l_peak_bytes=d2l.peak_bytes,
            in_context_question_s=ic.median_s,
            in_context_prompt_tokens=ic.result,
            in_context_peak_bytes=ic.peak_bytes,
            in_context_truncated=kept < total,
            in_context_kept_tokens=kept,
            latency_ratio=ic.median_s / d2l.median_s,
            memory_ratio=(ic.peak_bytes / d2l.peak_bytes) if (d2l.peak_bytes or 0) >= _MIN_PEAK_BYTES else None,
            d2l_first_question_s=build.median_s + d2l.median_s,
        )
        rows.append(row)
    return rows
