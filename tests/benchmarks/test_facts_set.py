"""The saved facts set: a faithful round trip, clear refusals, and the shipped set is held out and answerable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from benchmarks.facts_set import DEFAULT_FACTS_SET, FactsSet, facts_set_from, load_facts_set, save_facts_set
from d2l_rag.model.base import FrozenLM
from d2l_rag.training.evaluate import facts_eval, facts_examples
from d2l_rag.training.facts import name_split


def _words(text: str) -> int:
    return len(text.split())


def _small_set() -> FactsSet:
    return FactsSet({length: facts_examples(_words, length, 3) for length in (64, 128)}, "heldout")


def test_a_saved_set_reads_back_the_same_examples_with_the_files_hash(tmp_path: Path) -> None:
    facts = _small_set()
    path = tmp_path / "facts.json"
    sha = save_facts_set(facts, path)
    loaded = load_facts_set(path)
    assert dict(loaded) == dict(facts)
    assert loaded.split == "heldout" and loaded.path == path
    assert loaded.sha256 == sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.tmp"))


def test_a_missing_file_or_another_shape_is_refused_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no facts set at .*absent\.json"):
        load_facts_set(tmp_path / "absent.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"lengths": {"64": [{"question": "?"}]}, "split": "heldout"}))
    with pytest.raises(ValueError, match=r"other\.json is not a facts set"):
        load_facts_set(other)
    save_facts_set(_small_set(), other)
    data = json.loads(other.read_text())
    data["split"] = "test"
    other.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="split must be"):
        load_facts_set(other)


def test_lengths_or_counts_the_set_does_not_hold_are_refused_before_any_work() -> None:
    facts = _small_set()
    facts.check_covers([64, 128], 3)
    with pytest.raises(ValueError, match=r"\{64: 3, 128: 3\}.*\[256\]"):
        facts.check_covers([64, 256], 3)
    with pytest.raises(ValueError, match=r"4 of \[64, 128\]"):
        facts.check_covers([64, 128], 4)


def test_facts_eval_asks_the_given_examples(tiny_lm: FrozenLM) -> None:
    facts = _small_set()
    result = facts_eval(tiny_lm, None, [64], 2, modes=("no_document",), examples=facts, max_new_tokens=4)
    by_type = result["no_document"]["64"]["by_type"]
    asked = [ex.meta["fact_type"] for ex in facts[64][:2]]
    assert sum(v["n"] for v in by_type.values()) == 2
    assert {t: asked.count(t) for t in asked} == {t: v["n"] for t, v in by_type.items()}
    right = result["no_document"]["64"]["right"]  # per question, in the order asked, for paired comparisons
    assert len(right) == 2 and sum(right) == sum(v["right"] for v in by_type.values())
    by_answer = result["no_document"]["64"]["by_answer"]  # the same questions counted by what the answer spells
    assert sum(v["n"] for v in by_answer.values()) == 2 and sum(v["right"] for v in by_answer.values()) == sum(right)
    answers = result["no_document"]["64"]["answers"]  # every answer kept, so a run's misses can be read
    assert len(answers) == 2 and answers[-1] == result["no_document"]["64"]["sample_answer"]
    with pytest.raises(ValueError, match="4 facts examples of 128 tokens asked"):
        facts_eval(tiny_lm, None, [128], 4, modes=("no_document",), examples=facts)


def test_the_shipped_set_is_held_out_and_every_answer_is_in_its_document() -> None:
    facts = load_facts_set(DEFAULT_FACTS_SET)
    assert facts.split == "heldout"
    facts.check_covers([256, 1024], 100)
    for examples in facts.values():
        for ex in examples:
            assert ex.kind == "facts" and ex.answer in ex.document
            assert all(name_split(name) == "heldout" for name in ex.meta["names"].split("|"))


def test_a_seeded_set_is_the_draw_facts_eval_makes_with_that_seed_and_keeps_its_seed(tmp_path: Path) -> None:
    a, b = (facts_set_from(_words, [64, 128], 3, seed=s) for s in (11, 12))
    assert a == {length: facts_examples(_words, length, 3, "heldout", 11) for length in (64, 128)}
    assert [ex.question for ex in a[64]] != [ex.question for ex in b[64]]
    assert facts_set_from(_words, [64], 3) == {64: facts_examples(_words, 64, 3)}  # facts_eval's own seed
    save_facts_set(a, tmp_path / "a.json")
    assert load_facts_set(tmp_path / "a.json").seed == 11


@pytest.mark.parametrize("seed", [4242, 5151, 8765])
def test_the_seeded_sets_are_held_out_and_hold_the_questions_their_results_were_scored_on(seed: int) -> None:
    """The extra draws of the ship test (docs/training.md, stage R): the same questions as the stored results."""
    facts = load_facts_set(DEFAULT_FACTS_SET.with_name(f"facts_heldout_seed{seed}.json"))
    assert facts.split == "heldout" and facts.seed == seed
    facts.check_covers([256, 1024], 100)
    scored = json.loads(
        (Path(__file__).parents[2] / f"benchmarks/results/facts_cpu_stage_m_fresh_seed{seed}/facts.json").read_text()
    )["questions"]
    for length, examples in facts.items():
        assert [ex.question for ex in examples] == [q["question"] for q in scored[str(length)]]
        assert all(ex.kind == "facts" and ex.answer in ex.document for ex in examples)
