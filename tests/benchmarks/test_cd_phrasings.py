"""benchmarks.cd_phrasings: the facts it redraws are the ones facts_eval asks about, and the script restores them."""

from __future__ import annotations

import d2l_rag.training.facts as facts_module
from benchmarks.cd_phrasings import redraw_with_facts
from d2l_rag.training.evaluate import facts_examples


def words(text: str) -> int:
    return len(text.split())


def test_redrawn_examples_are_facts_evals_with_the_asked_fact_first():
    drawn = redraw_with_facts(words, 200, 6)
    assert [ex for ex, _ in drawn] == facts_examples(words, 200, 6)
    for example, facts in drawn:
        asked = facts[0]
        assert asked.sentence == example.meta["fact"] and asked.sentence in example.document
        assert (example.question, example.answer) in asked.questions
        assert str(len(facts)) == example.meta["n_facts"]
        assert all(f.sentence in example.document for f in facts)


def test_the_recording_wrapper_is_removed_afterwards():
    make_fact = facts_module.make_fact
    redraw_with_facts(words, 200, 1)
    assert facts_module.make_fact is make_fact
