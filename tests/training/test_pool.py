from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from d2l_rag.model.chunking import tokenize_document
from d2l_rag.testing import tiny_llama
from d2l_rag.training.config import DataMix, TrainConfig
from d2l_rag.training.facts import FACT_TYPES
from d2l_rag.training.needle import WORD_QUESTION
from d2l_rag.training.pool import build_pool


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(seed=2)


@pytest.fixture
def seen(monkeypatch) -> list:
    """The examples the next `build_pool` drew, in order (filled when it runs)."""
    import d2l_rag.training.pool as pool_module

    drawn: list = []
    make_examples = pool_module._examples

    def recording_examples(*args, **kwargs):
        drawn[:] = make_examples(*args, **kwargs)
        return drawn

    monkeypatch.setattr(pool_module, "_examples", recording_examples)
    return drawn


def _config(**update) -> TrainConfig:
    base = {"pool_size": 24, "teacher_batch": 8, "answer_tokens": 4, "min_doc_tokens": 40, "max_doc_tokens": 3000}
    return TrainConfig(**{**base, **update})


def test_pool_tokenizes_every_document_like_the_library_and_is_deterministic(lm):
    cfg = _config(mix=DataMix(needle=1, negative=1, facts=1, prose=0))
    items = build_pool(lm, cfg, seed=5)
    assert items and {i.example.kind for i in items} == {"needle", "negative", "facts"}
    for item in items:
        assert item.doc_ids == tokenize_document(lm.tokenizer, item.example.document)
        assert 0 < len(item.answer) <= 4
    again = build_pool(lm, cfg, seed=5)
    assert [i.doc_ids for i in again] == [i.doc_ids for i in items]


def test_teacher_reads_long_haystacks_shortened_and_facts_stay_within_its_window(lm):
    cfg = _config(mix=DataMix(needle=1, negative=1, facts=1, prose=0), teacher_max_doc_tokens=300)
    items = build_pool(lm, cfg, seed=6)
    shortened = [i for i in items if i.example.teacher_document is not None]
    assert shortened, "log-uniform lengths up to 3000 tokens must give some haystacks over 300"
    for item in items:
        assert len(item.teacher_prompt) < 300 * 1.1 + 60  # document (or its short version) + chat markup
        if item.example.kind == "facts":
            assert item.example.teacher_document is None and len(item.doc_ids) <= 300 * 1.1
    assert max(len(i.doc_ids) for i in shortened) > 1000


@pytest.mark.parametrize("right_only", [True, False])
def test_teacher_right_only_drops_what_the_teacher_got_wrong(lm, monkeypatch, seen, right_only):
    """A teacher that answers every other example right: with the filter, only its right needle/facts answers and
    the negatives (no reference to check) stay; without it, every example stays."""
    import d2l_rag.training.pool as pool_module

    def teacher(lm_, prompts, max_new_tokens, batch_size):
        assert len(prompts) == len(seen)
        texts = [f"It is {ex.answer}." if i % 2 == 0 else "I do not know." for i, ex in enumerate(seen)]
        return [lm.tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]

    monkeypatch.setattr(pool_module, "greedy_answers", teacher)
    cfg = _config(mix=DataMix(needle=1, negative=1, facts=1, prose=0), teacher_right_only=right_only)
    kept = {id(item.example) for item in build_pool(lm, cfg, seed=7)}
    expected = {id(ex) for i, ex in enumerate(seen) if not right_only or i % 2 == 0 or ex.kind == "negative"}
    assert kept == expected
    assert {ex.kind for ex in seen if id(ex) not in kept} <= ({"needle", "facts"} if right_only else set())
    assert len(kept) < len(seen) if right_only else len(kept) == len(seen)


def test_a_pool_the_teacher_got_all_wrong_is_an_error(lm):
    """The random tiny teacher answers no fact right: the filter leaves nothing, which must not train silently."""
    cfg = _config(pool_size=6, mix=DataMix(needle=0, negative=0, facts=1, prose=0), teacher_right_only=True)
    with pytest.raises(ValueError, match="empty pool: the teacher answered none of the 6 examples right"):
        build_pool(lm, cfg, seed=8)


def test_asked_fact_weights_oversample_their_types(lm, seen):
    """Weights 0 exclude a type from the questions, and a larger weight is drawn more often."""
    weights = {kind: 0.0 for kind in FACT_TYPES} | {"vault": 6.0, "ship": 2.0}
    cfg = _config(
        pool_size=40, max_doc_tokens=300, mix=DataMix(needle=0, negative=0, facts=1, prose=0, asked_facts=weights)
    )
    build_pool(lm, cfg, seed=9)
    asked = Counter(ex.meta["fact_type"] for ex in seen)
    assert set(asked) == {"vault", "ship"} and asked["vault"] > asked["ship"] > 0
    assert sum(asked.values()) == 40


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"volcano": 2.0}, r"asked_facts names unknown fact types \['volcano'\]"),
        ({"vault": -1.0}, r"asked_facts weights must be >= 0, negative for \['vault'\]"),
        ({kind: 0.0 for kind in FACT_TYPES}, "asked_facts gives every fact type weight 0"),
    ],
)
def test_bad_asked_fact_weights_are_refused(weights, message):
    with pytest.raises(ValidationError, match=message):
        DataMix(asked_facts=weights)


def test_fact_sentence_answers_keep_missed_facts_with_the_fact_as_answer(lm, monkeypatch):
    """A teacher that misses everything: facts stay with their planted sentence (then EOS) as the answer, missed
    needles are still dropped, negatives (no reference) stay with the teacher's own answer."""
    import d2l_rag.training.pool as pool_module

    wrong = lm.tokenizer("I do not know.", add_special_tokens=False)["input_ids"]
    monkeypatch.setattr(pool_module, "greedy_answers", lambda lm_, prompts, n, b: [list(wrong) for _ in prompts])
    mix = DataMix(needle=1, negative=1, facts=1, prose=0)
    items = build_pool(lm, _config(mix=mix, teacher_right_only=True, fact_sentence_answers=True), seed=10)
    kinds = Counter(item.example.kind for item in items)
    assert kinds["facts"] > 0 and kinds["negative"] > 0 and "needle" not in kinds
    eos = lm.model.generation_config.eos_token_id
    for item in items:
        if item.example.kind == "facts":
            fact = lm.tokenizer(item.example.meta["fact"], add_special_tokens=False)["input_ids"]
            assert item.answer == [*fact, eos if isinstance(eos, int) else eos[0]]
            assert item.example.answer in lm.tokenizer.decode(item.answer)
        else:
            assert item.answer == wrong


def test_fact_sentence_answers_need_teacher_right_only():
    with pytest.raises(ValidationError, match="fact_sentence_answers replaces the answers teacher_right_only"):
        TrainConfig(fact_sentence_answers=True)


def test_magic_word_needles_join_the_pool_and_weight_zero_draws_as_before(lm, seen):
    import random

    from d2l_rag.training.pool import _examples

    cfg = _config(pool_size=30, max_doc_tokens=300, mix=DataMix(needle=1, negative=0, facts=0, prose=0, word_needle=2))
    items = build_pool(lm, cfg, seed=11)
    kinds = Counter(ex.kind for ex in seen)
    assert set(kinds) == {"needle", "word_needle"} and kinds["word_needle"] > kinds["needle"]
    assert {i.example.question for i in items if i.example.kind == "word_needle"} <= {WORD_QUESTION}
    # the word needle's weight comes last, so a mix without it draws the kinds the four-kind draw did
    mix = DataMix(needle=1, negative=1, facts=0, prose=0)
    drawn = _examples(lm.tokenizer, lm, _config(max_doc_tokens=300, mix=mix), random.Random(3), 20, "train")
    four = random.Random(3).choices(["needle", "negative", "facts", "prose"], weights=[1, 1, 0, 0], k=20)
    assert [ex.kind for ex in drawn] == four


def test_copy_bridges_join_the_pool_within_the_teachers_window_and_weight_zero_draws_as_before(lm, seen):
    import random

    from d2l_rag.training.pool import _examples

    only_vaults = {kind: 0.0 for kind in FACT_TYPES} | {"vault": 1.0}
    mix = DataMix(needle=0, negative=0, facts=0, prose=0, word_prose=1, facts_filler=1, asked_facts=only_vaults)
    cfg = _config(pool_size=30, max_doc_tokens=3000, teacher_max_doc_tokens=400, mix=mix)
    build_pool(lm, cfg, seed=4)
    kinds = Counter(ex.kind for ex in seen)
    assert set(kinds) == {"word_prose", "facts_filler"} and sum(kinds.values()) == 30
    assert {ex.question for ex in seen if ex.kind == "word_prose"} == {WORD_QUESTION}
    # asked_facts weighs the filler's facts as it does the prose's
    assert {ex.meta["fact_type"] for ex in seen if ex.kind == "facts_filler"} == {"vault"}
    count = lm.tokenizer  # no shortened version for the teacher: every bridge is drawn within its window
    assert all(len(count(ex.document)["input_ids"]) <= 1.1 * 400 + 20 for ex in seen)
    # the bridges' weights come last, so a mix without them draws the kinds the five-kind draw did
    mix = DataMix(needle=1, negative=1, facts=0, prose=0, word_needle=1)
    drawn = _examples(lm.tokenizer, lm, _config(max_doc_tokens=300, mix=mix), random.Random(3), 20, "train")
    five = random.Random(3).choices(["needle", "negative", "facts", "prose", "word_needle"], [1, 1, 0, 0, 1], k=20)
    assert [ex.kind for ex in drawn] == five


def test_a_mix_of_bridges_alone_is_a_mix():
    assert DataMix(needle=0, negative=0, facts=0, prose=0, facts_filler=1).kind_weights()["facts_filler"] == 1
    with pytest.raises(ValidationError, match="at least one positive weight"):
        DataMix(needle=0, negative=0, facts=0, prose=0)
