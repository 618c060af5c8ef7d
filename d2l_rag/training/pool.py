"""The teacher pool: documents and questions from every generator, with the teacher's answers, made up front.

Generating all teacher answers in a few large batches before training keeps the GPU busy (per-document
generation inside the loop left it mostly idle in the first probe).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from d2l_rag.model.base import FrozenLM
from d2l_rag.training.config import TrainConfig
from d2l_rag.training.examples import QAExample
from d2l_rag.training.objective import TeacherTopK
from d2l_rag.training.scoring import answer_is_right
from d2l_rag.training.teacher import answer_targets, chat_prompt_ids, greedy_answers, written_answer_ids

__all__ = [
    "PoolItem",
    "answer_examples",
    "build_pool",
    "draw_examples",
    "draw_examples_without_model",
    "kind_counts",
    "token_counter",
]


@dataclass(frozen=True)
class PoolItem:
    example: QAExample
    doc_ids: list[int]  # the document's tokens (what the hypernetwork reads, chunked per step)
    teacher_prompt: list[int]  # chat(document + question); a shortened document when it exceeds the teacher's window
    student_prompt: list[int]  # chat(question)
    answer: list[int]  # the teacher's greedy answer, EOS included
    teacher_top: TeacherTopK | None = None  # the teacher's targets on `answer`, when the pool holds them


def token_counter(lm: FrozenLM):
    return _tokens_of(lm.tokenizer)


def _tokens_of(tokenizer: Any):
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def _length(rng: random.Random, cfg: TrainConfig, teacher_reads_it: bool = False) -> int:
    """Log-uniform document length, so short and long documents are both common.

    `teacher_reads_it`: the document must fit `teacher_max_doc_tokens` (facts and prose have no shortened
    version for the teacher).
    """
    hi_tokens = cfg.max_doc_tokens
    if teacher_reads_it and cfg.teacher_max_doc_tokens is not None:
        hi_tokens = min(hi_tokens, cfg.teacher_max_doc_tokens)
    lo, hi = math.log(min(cfg.min_doc_tokens, hi_tokens)), math.log(hi_tokens)
    return int(math.exp(rng.uniform(lo, hi)))


def _examples(
    tokenizer: Any, lm: FrozenLM | None, cfg: TrainConfig, rng: random.Random, n: int, split: str
) -> list[QAExample]:
    """`n` examples of the mix; `lm` writes the prose questions (None: a mix without prose, drawn from the
    tokenizer alone, e.g. in a background process)."""
    from d2l_rag.training.needle import make_needle_example

    count = _tokens_of(tokenizer)
    mix = cfg.mix
    weights = mix.kind_weights()
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=n)
    examples: list[QAExample] = []
    passages: list[str] = []
    for kind in kinds:
        # only haystacks have a shortened version for the teacher; the rest must fit its window
        haystack = kind in ("needle", "negative", "word_needle")
        length = _length(rng, cfg, teacher_reads_it=not haystack)
        if haystack:
            magic = "word" if kind == "word_needle" else "number"
            examples.append(
                make_needle_example(
                    rng,
                    length,
                    count,
                    split=split,
                    with_needle=kind != "negative",
                    teacher_tokens=cfg.teacher_max_doc_tokens,
                    magic=magic,
                )
            )
        elif kind in ("facts", "facts_filler"):
            from d2l_rag.training.facts import FACT_TYPES, make_facts_example

            # no draw without weights, so the pools of older configs stay what they were
            asked = rng.choices(FACT_TYPES, weights=mix.fact_type_weights())[0] if mix.asked_facts else None
            n_facts = rng.randint(1, 4)
            setting = "prose" if kind == "facts" else "filler"
            examples.append(make_facts_example(rng, length, count, split, n_facts, asked, setting))
        elif kind == "word_prose":
            from d2l_rag.training.copy_bridges import make_word_in_prose_example

            examples.append(make_word_in_prose_example(rng, length, count, split, n_distractors=rng.randint(0, 3)))
        else:
            from d2l_rag.training.prose import prose_text

            passages.append(prose_text(rng, target_chars=4 * length, split=split))
    if passages:
        from d2l_rag.training.prose_questions import generate_prose_questions

        if lm is None:
            raise ValueError("prose questions are written by the base model: drawing them needs it, not a tokenizer")

        def generate(prompts: list[str]) -> list[str]:
            ids = [chat_prompt_ids(lm, p) for p in prompts]
            outs = greedy_answers(lm, ids, max_new_tokens=48, batch_size=cfg.teacher_batch)
            return [lm.tokenizer.decode(o, skip_special_tokens=True) for o in outs]

        examples += generate_prose_questions(passages, generate, per_passage=1)
    return examples


def draw_examples(
    lm: FrozenLM, cfg: TrainConfig, seed: int, n: int | None = None, split: str = "train"
) -> list[QAExample]:
    """The pool's documents and questions (`n`, default cfg.pool_size), before the teacher answers them; CPU work
    but for the prose questions, which the base model writes. Deterministic for a seed on one machine."""
    return _examples(lm.tokenizer, lm, cfg, random.Random(seed), n or cfg.pool_size, split)


def draw_examples_without_model(
    tokenizer: Any, cfg: TrainConfig, seed: int, n: int | None = None, split: str = "train"
) -> list[QAExample]:
    """`draw_examples` with the base model's tokenizer alone (picklable, so another process can draw the next
    pool while this one trains); the same examples for the same seed. A mix with prose needs the model."""
    return _examples(tokenizer, None, cfg, random.Random(seed), n or cfg.pool_size, split)


def answer_examples(lm: FrozenLM, cfg: TrainConfig, examples: list[QAExample]) -> list[PoolItem]:
    """The teacher's answers to `examples` in big batches, keeping what `cfg` keeps (`teacher_right_only`), with
    the teacher's top-k targets on them when `cfg.teacher_top_k` asks for those."""
    teacher_prompts = [chat_prompt_ids(lm, ex.question, ex.teacher_context) for ex in examples]
    answers = greedy_answers(lm, teacher_prompts, cfg.answer_tokens, cfg.teacher_batch)
    kept = []
    for ex, tp, ans in zip(examples, teacher_prompts, answers, strict=True):
        if ans and cfg.teacher_right_only and _teacher_right(lm, ex, ans) is False:
            if not (cfg.fact_sentence_answers and "fact" in ex.meta):
                continue
            ans = written_answer_ids(lm, ex.meta["fact"])  # the teacher missed it: the fact's sentence instead
        if ans:
            kept.append((ex, tp, ans))
    if not kept:
        right = " right" if cfg.teacher_right_only else ""
        raise ValueError(f"empty pool: the teacher answered none of the {len(examples)} examples{right}")
    # One batched call: the fast tokenizer spreads 64k-token haystacks over all cores.
    doc_ids = lm.tokenizer([ex.document for ex, _, _ in kept], add_special_tokens=False)["input_ids"]
    tops: list[TeacherTopK | None] = [None] * len(kept)
    if cfg.teacher_top_k:
        prompts, answers = [tp for _, tp, _ in kept], [ans for _, _, ans in kept]
        tops = list(answer_targets(lm, prompts, answers, cfg.teacher_top_k, cfg.teacher_batch))
    return [
        PoolItem(ex, list(ids), tp, chat_prompt_ids(lm, ex.question), ans, top)
        for (ex, tp, ans), ids, top in zip(kept, doc_ids, tops, strict=True)
    ]


def build_pool(lm: FrozenLM, cfg: TrainConfig, seed: int, n: int | None = None, split: str = "train") -> list[PoolItem]:
    """`n` examples (default cfg.pool_size) with teacher answers; deterministic for a seed."""
    return answer_examples(lm, cfg, draw_examples(lm, cfg, seed, n, split))


def _teacher_right(lm: FrozenLM, example: QAExample, answer: list[int]) -> bool | None:
    text = lm.tokenizer.decode(answer, skip_special_tokens=True)
    return answer_is_right(example.kind, text, example.answer)


def kind_counts(pool: list[PoolItem]) -> str:
    """'needle 1200, facts 600, ...': what a pool holds, for the training log."""
    counts = Counter(item.example.kind for item in pool)
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
