"""Training and evaluation data: needles, planted facts, the prose corpus and self-generated prose questions."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from d2l_rag.training.facts import FACT_TYPES, facts_dataset, make_fact, make_facts_example, name_split
from d2l_rag.training.needle import (
    FILLER,
    QUESTION,
    WORD_QUESTION,
    make_needle_example,
    needle_dataset,
    number_split,
)
from d2l_rag.training.prose import _passages_by_source, prose_passages, prose_text, source_split
from d2l_rag.training.prose_questions import PROMPTS, generate_prose_questions, parse_question
from d2l_rag.training.scoring import answer_contains, answer_form


def words(text: str) -> int:
    return len(text.split())


def quarter_chars(text: str) -> int:
    return len(text) // 4


COUNTERS = [words, quarter_chars]


# --- needle -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", COUNTERS)
@pytest.mark.parametrize("length", [200, 2000, 64_000])
def test_needle_once_at_its_depth_bin_and_length(count, length):
    for depth_bin in range(10):
        ex = make_needle_example(random.Random(depth_bin), length, count, depth_bin=depth_bin)
        assert ex.kind == "needle" and ex.question == QUESTION
        assert re.fullmatch(r"\d{4}", ex.answer)
        assert ex.document.count(f"The special magic number is {ex.answer}.") == 1
        assert re.findall(r"\d+", ex.document) == [ex.answer]
        assert ex.depth == ex.document.index("The special magic number") / len(ex.document)
        assert int(ex.depth * 10) == depth_bin == int(ex.meta["depth_bin"])
        line = count(FILLER + "\n")
        assert abs(count(ex.document) - length) <= max(0.05 * length, line)


def test_needle_calls_the_token_counter_a_few_times_only():
    calls = []
    make_needle_example(random.Random(0), 64_000, lambda s: calls.append(s) or words(s))
    assert len(calls) <= 3 and max(map(len, calls)) < 200


def test_negative_has_no_needle():
    ex = make_needle_example(random.Random(0), 1000, words, with_needle=False)
    assert ex.kind == "negative" and ex.answer == "" and ex.depth is None and ex.meta["needle"] == "none"
    assert "magic" not in ex.document and not re.search(r"\d", ex.document)
    assert abs(words(ex.document) - 1000) <= 0.05 * 1000


@pytest.mark.parametrize("depth_bin", [0, 4, 9])
def test_long_needle_comes_with_a_short_haystack_for_the_teacher(depth_bin):
    ex = make_needle_example(random.Random(depth_bin), 64_000, words, depth_bin=depth_bin, teacher_tokens=3000)
    teacher = ex.teacher_document
    assert teacher is not None and ex.teacher_context == teacher
    assert abs(words(teacher) - 3000) <= 0.05 * 3000 and words(ex.document) > 20 * words(teacher)
    assert re.findall(r"\d+", teacher) == [ex.answer] == re.findall(r"\d+", ex.document)
    assert int(teacher.index("The special magic number") / len(teacher) * 10) == depth_bin


def test_short_needle_and_negative_give_the_teacher_the_document_itself():
    short = make_needle_example(random.Random(0), 2000, words, teacher_tokens=3000)
    assert short.teacher_document is None and short.teacher_context == short.document
    same = make_needle_example(random.Random(0), 2000, words)
    assert short.document == same.document  # the option draws nothing more from the rng
    negative = make_needle_example(random.Random(0), 9000, words, with_needle=False, teacher_tokens=3000)
    assert abs(words(negative.teacher_context) - 3000) <= 0.05 * 3000
    assert not re.search(r"\d", negative.teacher_context)


def test_needle_dataset_is_deterministic_and_cycles_depth_bins_evenly():
    a = list(needle_dataset(7, 40, [300, 600], words))
    assert a == list(needle_dataset(7, 40, [300, 600], words))
    assert a != list(needle_dataset(8, 40, [300, 600], words))
    cells = Counter((int(ex.meta["lines"]) > 20, int(ex.depth * 10)) for ex in a)
    assert len(cells) == 20 and set(cells.values()) == {2}


def test_needle_numbers_of_heldout_never_appear_in_train():
    train = {make_needle_example(random.Random(i), 100, words).answer for i in range(2000)}
    heldout = {make_needle_example(random.Random(i), 100, words, split="heldout").answer for i in range(2000)}
    assert train.isdisjoint(heldout) and len(train) > 1000 and len(heldout) > 600
    assert {number_split(int(n)) for n in train} == {"train"}
    assert {number_split(int(n)) for n in heldout} == {"heldout"}


def test_needle_rejects_a_bad_bin():
    with pytest.raises(ValueError, match="depth_bin must be in"):
        make_needle_example(random.Random(0), 100, words, depth_bin=10)
    with pytest.raises(ValueError, match="teacher_tokens must be > 0"):
        make_needle_example(random.Random(0), 100, words, teacher_tokens=0)


@pytest.mark.parametrize("length", [200, 2000])
def test_magic_word_once_at_its_depth_bin_with_a_name_or_code_of_its_split(length):
    forms = Counter()
    for seed in range(40):
        split = "heldout" if seed % 2 else "train"
        ex = make_needle_example(random.Random(seed), length, words, depth_bin=seed % 10, split=split, magic="word")
        assert ex.kind == "word_needle" and ex.question == WORD_QUESTION and ex.meta["word"] == ex.answer
        assert ex.document.count(f"The special magic word is {ex.answer}.") == 1
        assert int(ex.depth * 10) == seed % 10 and answer_contains(ex.document, ex.answer)
        names = ex.answer.split(" ")  # a person's first and last name are drawn one by one
        assert {name_split(name) for name in names} == {split}
        forms[answer_form(ex.answer)] += 1
    assert set(forms) == {"name", "code"}


def test_magic_word_needs_a_word():
    with pytest.raises(ValueError, match="negatives are number haystacks"):
        make_needle_example(random.Random(0), 100, words, with_needle=False, magic="word")
    with pytest.raises(ValueError, match="magic must be 'number' or 'word'"):
        make_needle_example(random.Random(0), 100, words, magic="letter")


# --- facts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FACT_TYPES)
def test_every_question_of_a_fact_names_its_entity_and_has_a_literal_answer(kind):
    assert len(FACT_TYPES) >= 8
    for seed in range(20):
        fact = make_fact(random.Random(seed), kind)
        assert fact.kind == kind and len(fact.questions) >= 3
        for question, answer in fact.questions:
            assert answer and answer in fact.sentence and answer not in question
            assert question.endswith("?") and any(name in question for name in fact.names)
        assert all(name in fact.sentence for name in fact.names)


@pytest.mark.parametrize(("kind", "unit"), [("mountain", "metres"), ("river", "kilometres")])
def test_a_quantity_is_right_in_either_spelling_of_its_unit(kind, unit):
    """The reference is the number: '6,080 meters' answers 'How high is Mount X?' as well as '6,080 metres'."""
    for seed in range(10):
        fact = make_fact(random.Random(seed), kind)
        number = re.search(r"[\d,]+(?= " + unit + ")", fact.sentence).group()
        for _, answer in fact.questions:
            assert answer == number
            american = unit.replace("metres", "meters")
            assert answer_contains(f"It is {number} {american} long.", answer)
            assert not answer_contains(f"It is 1{number} {unit}.", answer)


@pytest.mark.parametrize("count", COUNTERS)
@pytest.mark.parametrize("length", [300, 1000, 4000])
def test_facts_example_plants_every_fact_and_respects_length(count, length):
    rng = random.Random(length)
    for _ in range(10):
        n_facts = rng.randint(1, 4)
        ex = make_facts_example(rng, length, count, n_facts=n_facts)
        assert ex.kind == "facts" and ex.answer in ex.document and ex.meta["n_facts"] == str(n_facts)
        assert all(name in ex.document for name in ex.meta["names"].split("|"))
        assert any(name in ex.question for name in ex.meta["asked_names"].split("|"))
        assert ex.answer in ex.meta["fact"] and ex.document.count(ex.meta["fact"]) == 1
        assert ex.depth == ex.document.index(ex.meta["fact"]) / len(ex.document)
        assert abs(count(ex.document) - length) <= 0.05 * length


@pytest.mark.parametrize("kind", FACT_TYPES)
def test_facts_example_asks_about_the_requested_type(kind):
    rng = random.Random(kind)
    for n_facts in (1, 3):
        ex = make_facts_example(rng, 200, words, n_facts=n_facts, asked_kind=kind)
        assert ex.meta["fact_type"] == kind and ex.answer in ex.meta["fact"]


def test_facts_example_rejects_an_unknown_asked_type():
    with pytest.raises(ValueError, match=r"asked_kind must be one of .* got 'volcano'"):
        make_facts_example(random.Random(0), 200, words, asked_kind="volcano")


def test_facts_dataset_is_deterministic_and_covers_every_fact_type():
    a = list(facts_dataset(3, 300, [150, 400], words))
    assert a == list(facts_dataset(3, 300, [150, 400], words))
    assert {ex.meta["fact_type"] for ex in a} == set(FACT_TYPES)
    assert a[0] != next(facts_dataset(4, 1, [150], words))
    depths = [ex.depth for ex in a]
    assert min(depths) < 0.2 and max(depths) > 0.8


def test_facts_names_and_codes_of_heldout_never_appear_in_train():
    def names(split):
        rng, out = random.Random(0), set()
        for i in range(3000):
            out.update(n.lower() for n in make_fact(rng, FACT_TYPES[i % len(FACT_TYPES)], split).names)
        for ex in facts_dataset(1, 200, [120], words, split):
            out.update(n.lower() for n in ex.meta["names"].split("|"))
        return out

    train, heldout = names("train"), names("heldout")
    assert train.isdisjoint(heldout) and len(heldout) > 3000
    assert {name_split(n) for n in heldout} == {"heldout"} and {name_split(n) for n in train} == {"train"}
    assert any(re.fullmatch(r"[a-z]{2}-\d{4}-[a-z]", n) for n in heldout)  # codes are covered too


# --- prose --------------------------------------------------------------------------------------------------


def test_prose_corpus_is_large_and_its_splits_share_no_source_or_text():
    train, heldout = prose_passages("train"), prose_passages("heldout")
    assert sum(map(len, train)) > 2_000_000 and sum(map(len, heldout)) > 200_000
    assert set(train).isdisjoint(heldout)
    paragraphs = [set(p for ps in split for p in ps.split("\n\n")) for split in (train, heldout)]
    assert paragraphs[0].isdisjoint(paragraphs[1])
    groups = {
        split: {s.split("/")[0] for s in _passages_by_source() if source_split(s) == split}
        for split in ("train", "heldout")
    }
    assert groups["train"].isdisjoint(groups["heldout"]) and len(groups["heldout"]) > 20


def test_prose_is_plain_text():
    passages = prose_passages("train")
    sample = random.Random(0).sample(passages, 200)
    assert not any(">>>" in p or "::=" in p for p in sample)
    assert all(sum(c in "{}[]<>=_*|\\#@$%^~`" for c in p) < 0.05 * len(p) for p in sample)
    assert all(len(para) >= 80 for p in sample for para in p.split("\n\n"))


def test_prose_text_is_deterministic_near_target_and_from_its_split():
    a = prose_text(random.Random(1), 5000, "heldout")
    assert a == prose_text(random.Random(1), 5000, "heldout")
    assert 4500 <= len(a) <= 5500
    heldout = "\n\n".join(prose_passages("heldout"))
    assert a.split("\n\n")[1] in heldout
    with pytest.raises(ValueError, match="split must be"):
        prose_text(random.Random(1), 100, "test")  # type: ignore[arg-type]


# --- prose questions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "question"),
    [
        ("What is the default port?", "What is the default port?"),
        ("**Question:** What does the parser return?", "What does the parser return?"),
        ("1. Which module parses JSON?\n2. Which one writes it?", "Which module parses JSON?"),
        ('Sure! Here is one:\n\n"How are errors reported?"', "How are errors reported?"),
        ("- What does strip remove?", "What does strip remove?"),
        ("No question here.", None),
        ("", None),
        ("Why?", None),
        ("What " + "very " * 60 + "long?", None),
    ],
)
def test_parse_question(reply, question):
    assert parse_question(reply) == question


def test_generate_prose_questions_with_a_fake_model():
    passages = ["The first passage talks about lighthouses.", "The second passage is about bread."]
    seen_prompts = []

    def generate(prompts: list[str]) -> list[str]:
        seen_prompts.extend(prompts)
        return ["Q: What does it talk about?", "What does it talk about?", "I cannot.", "What is bread made of?"]

    examples = generate_prose_questions(passages, generate, per_passage=2)
    assert len(seen_prompts) == 4 and seen_prompts[0].startswith(PROMPTS[0]) and passages[1] in seen_prompts[3]
    assert [(ex.document, ex.question) for ex in examples] == [
        (passages[0], "What does it talk about?"),  # the duplicate is dropped
        (passages[1], "What is bread made of?"),  # the refusal is dropped
    ]
    assert all(ex.kind == "prose" and ex.answer == "" for ex in examples)
    with pytest.raises(ValueError, match="returned 1 replies for 4 prompts"):
        generate_prose_questions(passages, lambda prompts: ["What?"], per_passage=2)


def test_needle_split_keeps_every_last_digit_in_both_splits():
    """A split by `number % 5` taught the network that needles never end in 0 or 5 (docs/training.md)."""
    for digit in range(10):
        numbers = range(1000 + digit, 10_000, 10)
        heldout = sum(number_split(n) == "heldout" for n in numbers) / len(numbers)
        assert 0.12 < heldout < 0.28, (digit, heldout)
