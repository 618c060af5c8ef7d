"""Held-out evaluations: needle-in-a-haystack (magic number) and fictional-facts QA, by mode and length.

Modes: "adapter" (question only, the document's adapter), "in_context" (document in the prompt, only where it fits
the window) and "no_document" (the floor). Examples come from the held-out split of each generator. `max_chunks`
is `AdapterBuilder`'s: None = the checkpoint's composition limit, 0 = every chunk.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.config import GenerationConfig
from d2l_rag.generation import Generator
from d2l_rag.grounding import DocumentLexicon, tokenizer_rarity
from d2l_rag.model.base import FrozenLM
from d2l_rag.model.checkpoint import LoadedHypernetwork
from d2l_rag.training.examples import QAExample, Split
from d2l_rag.training.facts import make_facts_example
from d2l_rag.training.needle import N_DEPTH_BINS, make_needle_example
from d2l_rag.training.pool import token_counter
from d2l_rag.training.scoring import answer_contains, answer_form, magic_number_correct

__all__ = [
    "FACTS_SEED",
    "MODES",
    "answer_contains",
    "facts_eval",
    "facts_examples",
    "magic_number_correct",
    "niah_eval",
    "score_modes",
]

MODES = ("adapter", "in_context", "no_document")
FACTS_SEED = 4321  # facts_eval draws its examples of each length with random.Random(FACTS_SEED + length)
Scorer = Callable[[str, str], bool]


def score_modes(
    lm: FrozenLM,
    builder: AdapterBuilder | None,
    generator: Generator,
    examples: list[QAExample],
    modes: Sequence[str],
    score: Scorer,
    batch_size: int,
) -> dict[str, dict[str, object] | None]:
    """Accuracy of each mode on `examples` (None where in-context does not fit the window). Of `builder` and
    `generator` only `build`, `answer_batch` and `config` are used: benchmarks.decoding_probes passes stand-ins
    that build and answer with groups of adapters."""
    count = token_counter(lm)
    is_rare = tokenizer_rarity(lm.tokenizer)
    lexicons = {id(ex): DocumentLexicon.from_texts([ex.document], is_rare) for ex in examples}  # once for every mode
    fits = all(count(ex.document) + 96 + generator.config.max_new_tokens <= lm.context_window for ex in examples)
    out: dict[str, dict[str, object] | None] = {}
    for mode in modes:
        if mode == "adapter" and builder is None:
            continue
        if mode == "in_context" and not fits:
            out[mode] = None
            continue
        correct: list[bool] = []
        grounded: list[bool] = []  # the same answers with the document's spelling (d2l_rag.grounding)
        by_depth: dict[str, list[bool]] = {}
        by_type: dict[str, list[bool]] = {}
        by_answer: dict[str, list[bool]] = {}
        texts: list[str] = []  # every answer as generated, so a run's misses can be read afterwards
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            questions = [ex.question for ex in batch]
            if mode == "adapter":
                assert builder is not None
                answers = generator.answer_batch(questions, adapters=[builder.build(ex.document) for ex in batch])
            elif mode == "in_context":
                answers = generator.answer_batch(questions, contexts=[ex.document for ex in batch])
            else:
                answers = generator.answer_batch(questions)
            for ex, ans in zip(batch, answers, strict=True):
                ok = score(ans.text, ex.answer)
                correct.append(ok)
                texts.append(ans.text)
                grounded.append(score(lexicons[id(ex)].ground(ans.text).text, ex.answer))
                by_depth.setdefault(str(min(int((ex.depth or 0) * N_DEPTH_BINS), N_DEPTH_BINS - 1)), []).append(ok)
                if "fact_type" in ex.meta:
                    by_type.setdefault(ex.meta["fact_type"], []).append(ok)
                    by_answer.setdefault(answer_form(ex.answer), []).append(ok)
        result: dict[str, object] = {
            "accuracy": sum(correct) / len(correct),
            "n": len(correct),
            "by_depth": {k: sum(v) / len(v) for k, v in sorted(by_depth.items(), key=lambda kv: int(kv[0]))},
            "sample_answer": texts[-1] if texts else "",
            "right": correct,  # per example, in the order asked: two runs on the same questions compare pairwise
            "grounded_accuracy": sum(grounded) / len(grounded),
            "grounded_right": grounded,
            "answers": texts,
        }
        if by_type:  # counts, not fractions: a type drawn 6 times out of 100 needs its n read with it
            result["by_type"], result["by_answer"] = _right_counts(by_type), _right_counts(by_answer)
        out[mode] = result
    return out


def _right_counts(groups: dict[str, list[bool]]) -> dict[str, dict[str, int]]:
    return {k: {"right": sum(v), "n": len(v)} for k, v in sorted(groups.items())}


def _eval_by_length(
    lm: FrozenLM,
    hypernet: LoadedHypernetwork | None,
    lengths: Sequence[int],
    make_examples: Callable[[random.Random, int], list[QAExample]],
    score: Scorer,
    *,
    seed: int,
    modes: Sequence[str],
    batch_size: int,
    max_new_tokens: int,
    chunk_tokens: int | None,
    max_chunks: int | None,
    num_beams: int,
) -> dict[str, dict[str, object]]:
    """{mode: {length: result}} for examples drawn afresh (seeded by the length) at every length."""
    generator = Generator(lm, GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams))
    builder = (
        AdapterBuilder(lm, hypernet, chunk_tokens=chunk_tokens, batch_chunks=16, max_chunks=max_chunks)
        if hypernet
        else None
    )
    results: dict[str, dict[str, object]] = {m: {} for m in modes}
    for length in lengths:
        examples = make_examples(random.Random(seed + length), length)
        for mode, result in score_modes(lm, builder, generator, examples, modes, score, batch_size).items():
            results[mode][str(length)] = result
    return results


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
    max_chunks: int | None = None,
    magic: Literal["number", "word"] = "number",
    num_beams: int = 1,
) -> dict[str, dict[str, object]]:
    """{mode: {length: result}}; held-out needles (one number in five, by hash), depths cycled over the 10 bins.

    `magic="word"`: held-out magic words (invented names and codes), right when the answer holds the word."""
    count = token_counter(lm)

    def needles(rng: random.Random, length: int) -> list[QAExample]:
        return [
            make_needle_example(rng, length, count, depth_bin=i % N_DEPTH_BINS, split="heldout", magic=magic)
            for i in range(n_per_length)
        ]

    return _eval_by_length(
        lm,
        hypernet,
        lengths,
        needles,
        magic_number_correct if magic == "number" else answer_contains,
        seed=seed,
        modes=modes,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        chunk_tokens=chunk_tokens,
        max_chunks=max_chunks,
        num_beams=num_beams,
    )


def facts_examples(
    count: Callable[[str], int], length: int, n: int, split: Split = "heldout", seed: int = FACTS_SEED
) -> list[QAExample]:
    """The `n` facts documents of `length` tokens that facts_eval draws: 1-4 facts each, one of them asked.

    The prose around the facts comes from this machine's Python and packages, so another machine draws other
    documents; a set saved once (benchmarks/facts_set.py) compares machines on the same questions.
    """
    rng = random.Random(seed + length)
    return [make_facts_example(rng, length, count, split, rng.randint(1, 4)) for _ in range(n)]


def facts_eval(
    lm: FrozenLM,
    hypernet: LoadedHypernetwork | None,
    lengths: Sequence[int],
    n_per_length: int,
    seed: int = FACTS_SEED,
    modes: Sequence[str] = MODES,
    batch_size: int = 16,
    max_new_tokens: int = 32,
    chunk_tokens: int | None = None,
    max_chunks: int | None = None,
    split: Split = "heldout",
    examples: Mapping[int, Sequence[QAExample]] | None = None,
    num_beams: int = 1,
) -> dict[str, dict[str, object]]:
    """{mode: {length: result}} on fictional facts, by default held out (names and codes never seen in training).

    `split="train"` asks about facts of the kind training saw: the gap between the two tells fitting from
    generalising. `examples` ({length: examples}, e.g. a saved set) replaces the draw: the first `n_per_length`
    of each length are asked. Each result also counts right answers by fact type.
    """
    count = token_counter(lm)
    if examples is not None:
        for length in lengths:
            if len(examples.get(length, ())) < n_per_length:
                have = {k: len(v) for k, v in sorted(examples.items())}
                raise ValueError(f"{n_per_length} facts examples of {length} tokens asked, the set holds {have}")

    def facts(rng: random.Random, length: int) -> list[QAExample]:
        if examples is not None:
            return list(examples[length][:n_per_length])
        return facts_examples(count, length, n_per_length, split, seed)  # seeds its own rng as `rng` is seeded

    return _eval_by_length(
        lm,
        hypernet,
        lengths,
        facts,
        answer_contains,
        seed=seed,
        modes=modes,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        chunk_tokens=chunk_tokens,
        max_chunks=max_chunks,
        num_beams=num_beams,
    )
