"""The settings between the magic-word needle and the facts: a magic word in real prose, facts in the filler.

After the copy drill (stage J) the adapter spelled 11 of 30 held-out magic words hidden in filler lines, but 0 of
30 such words planted in prose and 0 of 30 facts' names or codes planted in the filler (in context 22/30 and 14/30;
benchmarks/copy_probe.py): it learned to copy in the one setting it drilled. These examples change one thing at a
time, the text around the value or the question asked about it, so the copy can carry over to facts in prose. Facts
in the filler are `facts.make_facts_example(..., setting="filler")`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from d2l_rag.training.examples import QAExample, Split
from d2l_rag.training.facts import FACT_TYPES, magic_word, make_fact, plant_in_prose
from d2l_rag.training.needle import WORD_QUESTION, word_needle_sentence

__all__ = ["make_word_in_prose_example"]


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
    sentences = [needle, *distractors]
    rng.shuffle(sentences)  # the word lands in a random stratum
    document = plant_in_prose(rng, sentences, target_tokens, count_tokens, split)
    meta = {"word": word, "n_facts": str(n_distractors)}
    return QAExample(document, WORD_QUESTION, word, "word_prose", document.index(needle) / len(document), meta)
