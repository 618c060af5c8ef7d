"""The settings between the magic-word needle and the facts: a magic word in real prose, facts in the filler.

After the copy drill (stage J) the adapter spelled 9 of 30 held-out magic words hidden in filler lines, but 0 of
30 of the same words planted in prose and 0 of 30 facts' names or codes planted in the filler (in context 25/30
and 15/30): it learned to copy in the one setting it drilled. These examples change one thing at a time, the text
around the value or the question asked about it, so the copy can carry over to facts in prose.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from d2l_rag.training.examples import QAExample, Split
from d2l_rag.training.facts import FACT_TYPES, magic_word, make_fact, plant_in_prose
from d2l_rag.training.needle import WORD_QUESTION, plant_in_filler, word_needle_sentence

__all__ = ["make_facts_in_filler_example", "make_word_in_prose_example"]


def make_word_in_prose_example(
    rng: random.Random,
    target_tokens: int,
    count_tokens: Callable[[str], int],
    split: Split = "train",
    n_distractors: int = 0,
) -> QAExample:
    """Real prose with the magic-word sentence and `n_distractors` facts planted in it; the magic-word question.

    Kind "word_prose", scored as a facts answer is (the word, whole, somewhere in the answer).
    """
    if n_distractors < 0:
        raise ValueError(f"n_distractors must be >= 0, got {n_distractors}")
    word = magic_word(rng, split)
    used = {part.lower() for part in word.split()}
    distractors = [make_fact(rng, rng.choice(FACT_TYPES), split, used).sentence for _ in range(n_distractors)]
    needle = word_needle_sentence(word)
    document = plant_in_prose(rng, [needle, *distractors], target_tokens, count_tokens, split)
    meta = {"word": word, "n_facts": str(n_distractors)}
    return QAExample(document, WORD_QUESTION, word, "word_prose", document.index(needle) / len(document), meta)


def make_facts_in_filler_example(
    rng: random.Random,
    target_tokens: int,
    count_tokens: Callable[[str], int],
    split: Split = "train",
    n_facts: int = 1,
    asked_kind: str | None = None,
) -> QAExample:
    """The needle's filler haystack with `n_facts` facts on lines of their own; a question about the first.

    Kind "facts_filler"; its meta is a facts example's (fact type, the asked fact's sentence), so it is scored,
    counted by type and given the fact's sentence (`fact_sentence_answers`) as a facts example is.
    """
    if n_facts < 1:
        raise ValueError(f"n_facts must be at least 1, got {n_facts}")
    if asked_kind is not None and asked_kind not in FACT_TYPES:
        raise ValueError(f"asked_kind must be one of {FACT_TYPES}, got {asked_kind!r}")
    used: set[str] = set()
    kinds = [asked_kind or rng.choice(FACT_TYPES)] + [rng.choice(FACT_TYPES) for _ in range(n_facts - 1)]
    facts = [make_fact(rng, kind, split, used) for kind in kinds]
    sentences = [f.sentence for f in facts]
    rng.shuffle(sentences)  # the asked fact lands in a random stratum
    document = plant_in_filler(rng, sentences, target_tokens, count_tokens)
    asked = facts[0]
    question, answer = rng.choice(asked.questions)
    meta = {
        "fact_type": asked.kind,
        "n_facts": str(n_facts),
        "names": "|".join(name for f in facts for name in f.names),
        "asked_names": "|".join(asked.names),
        "fact": asked.sentence,
    }
    depth = document.index(asked.sentence) / len(document)
    return QAExample(document, question, answer, "facts_filler", depth, meta)
