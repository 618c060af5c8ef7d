"""The copy bridges: the magic word planted in prose, facts planted in the filler haystack."""

from __future__ import annotations

import random

import pytest

from d2l_rag.training.copy_bridges import make_word_in_prose_example
from d2l_rag.training.facts import FACT_TYPES, make_facts_example, name_split
from d2l_rag.training.needle import FILLER, WORD_QUESTION, plant_in_filler, word_needle_sentence
from d2l_rag.training.prose import prose_passages


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("length", [200, 1000])
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_word_in_prose_plants_the_word_once_among_its_distractors(length, split):
    rng = random.Random(length)
    for n_distractors in range(4):
        ex = make_word_in_prose_example(rng, length, words, split, n_distractors)
        needle = word_needle_sentence(ex.answer)
        assert ex.kind == "word_prose" and ex.question == WORD_QUESTION and ex.meta["word"] == ex.answer
        assert ex.document.count(needle) == 1 and ex.depth == ex.document.index(needle) / len(ex.document)
        assert ex.document.count("special magic") == 1 and FILLER not in ex.document  # prose, not the filler
        assert {name_split(part) for part in ex.answer.split(" ")} == {split}
        assert abs(words(ex.document) - length) <= 0.05 * length


def test_word_in_prose_rejects_a_negative_distractor_count():
    with pytest.raises(ValueError, match="n_distractors must be >= 0, got -1"):
        make_word_in_prose_example(random.Random(0), 200, words, n_distractors=-1)


@pytest.mark.parametrize("length", [150, 1200])
def test_facts_in_filler_put_every_fact_on_a_line_of_its_own(length):
    rng = random.Random(length)
    for n_facts in (1, 2, 4):
        ex = make_facts_example(rng, length, words, "train", n_facts, setting="filler")
        assert ex.kind == "facts_filler" and ex.meta["n_facts"] == str(n_facts)
        lines = ex.document.split("\n")
        planted = [line for line in lines if line not in FILLER]  # the rest are whole or split filler lines
        assert len(planted) == n_facts and lines.count(ex.meta["fact"]) == 1
        assert ex.answer in ex.meta["fact"] and any(n in ex.question for n in ex.meta["asked_names"].split("|"))
        assert ex.depth == ex.document.index(ex.meta["fact"]) / len(ex.document)
        assert abs(words(ex.document) - length) <= 0.1 * length + words(FILLER)


@pytest.mark.parametrize("kind", FACT_TYPES)
def test_facts_in_filler_ask_about_the_requested_type(kind):
    ex = make_facts_example(random.Random(kind), 300, words, "heldout", 3, kind, "filler")
    assert ex.meta["fact_type"] == kind
    assert {name_split(n) for n in ex.meta["names"].split("|")} == {"heldout"}


def test_facts_in_filler_reject_bad_arguments():
    with pytest.raises(ValueError, match="n_facts must be at least 1, got 0"):
        make_facts_example(random.Random(0), 200, words, n_facts=0, setting="filler")
    with pytest.raises(ValueError, match=r"asked_kind must be one of .* got 'volcano'"):
        make_facts_example(random.Random(0), 200, words, asked_kind="volcano", setting="filler")
    with pytest.raises(ValueError, match="setting must be 'prose' or 'filler', got 'poem'"):
        make_facts_example(random.Random(0), 200, words, setting="poem")  # type: ignore[arg-type]


def test_plant_in_filler_spreads_sentences_over_depth_strata_in_order():
    sentences = [f"Planted sentence number {i}." for i in range(4)]
    for seed in range(20):
        doc = plant_in_filler(random.Random(seed), sentences, 2000, words)
        depths = [doc.index(s) / len(doc) for s in sentences]
        assert [int(d * 4) for d in depths] == [0, 1, 2, 3], depths
    with pytest.raises(ValueError, match="at least one sentence"):
        plant_in_filler(random.Random(0), [], 200, words)


def test_bridges_are_deterministic_and_their_prose_comes_from_the_split():
    a = make_word_in_prose_example(random.Random(5), 400, words, "heldout", 2)
    assert a == make_word_in_prose_example(random.Random(5), 400, words, "heldout", 2)
    b = make_facts_example(random.Random(5), 400, words, "train", 3, setting="filler")
    assert b == make_facts_example(random.Random(5), 400, words, "train", 3, setting="filler")
    heldout = "\n\n".join(prose_passages("heldout"))
    lines = [line for line in a.document.split("\n") if len(line) > 80 and "magic" not in line]
    assert lines and all(line[:40] in heldout for line in lines if not any(n in line for n in a.meta["word"].split()))
