"""Needle-in-a-haystack evaluation: exact match of the magic number, by document length and needle depth."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.config import GenerationConfig
from d2l_rag.generation import Generator
from d2l_rag.model.base import FrozenLM
from d2l_rag.model.checkpoint import LoadedHypernetwork
from d2l_rag.training.needle import make_needle_example
from d2l_rag.training.pool import token_counter

__all__ = ["MODES", "magic_number_correct", "niah_eval"]

MODES = ("adapter", "in_context", "no_document")


def magic_number_correct(answer: str, expected: str) -> bool:
    """Exact match: the first 4-digit number in the answer is the needle's."""
    found = re.findall(r"(?<!\d)\d{4}(?!\d)", answer.replace(",", ""))
    return bool(found) and found[0] == expected


def niah_eval(
    lm: FrozenLM,
    hypernet: LoadedHypernetwork | None,
    lengths: Sequence[int],
    n_per_length: int,
    seed: int = 1234,
    modes: Sequence[str] = ("adapter",),
    batch_size: int = 16,
    max_new_tokens: int = 24,
    chunk_tokens: int | None = None,
) -> dict[str, dict[str, object]]:
    """Accuracy per mode and length (and per depth bin); held-out needles, depths cycled over 10 bins.

    In-context is reported only where document + question fit the model's window.
    """
    count = token_counter(lm)
    generator = Generator(lm, GenerationConfig(max_new_tokens=max_new_tokens))
    builder = AdapterBuilder(lm, hypernet, chunk_tokens=chunk_tokens, batch_chunks=16) if hypernet else None
    results: dict[str, dict[str, object]] = {m: {} for m in modes}
    for length in lengths:
        rng = random.Random(seed + length)
        examples = [make_needle_example(rng, length, count, depth_bin=i % 10, split="heldout") for i in range(n_per_length)]
        for mode in modes:
            if mode == "adapter" and builder is None:
                continue
            if mode == "in_context" and count(examples[0].document) + 64 + max_new_tokens > lm.context_window:
                results[mode][str(length)] = None
                continue
            correct, by_depth = [], {}
            for start in range(0, len(examples), batch_size):
                batch = examples[start : start + batch_size]
                questions = [ex.question for ex in batch]
                if mode == "adapter":
                    answers = generator.answer_batch(questions, adapters=[builder.build(ex.document) for ex in batch])
                elif mode == "in_context":
                    answers = generator.answer_batch(questions, contexts=[ex.document for ex in batch])
                else:
                    answers = generator.answer_batch(questions)
                for ex, ans in zip(batch, answers, strict=True):
                    ok = magic_number_correct(ans.text, ex.answer)
                    correct.append(ok)
                    bin_ = str(int((ex.depth or 0) * 10))
                    by_depth.setdefault(bin_, []).append(ok)
            results[mode][str(length)] = {
                "accuracy": sum(correct) / len(correct),
                "n": len(correct),
                "by_depth": {k: sum(v) / len(v) for k, v in sorted(by_depth.items())},
                "sample_answer": answers[-1].text,
            }
    return results
