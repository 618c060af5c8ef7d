"""Sorting the adapter's misses: near misses, another fact of the document, neither; and runs that cannot pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.facts_set import FactsSet, save_facts_set
from benchmarks.miss_kinds import main, miss_kind, misses
from d2l_rag.training.examples import QAExample

DOCUMENT = (
    "The mill stood by the road for 40 years. The Flirtfin River is 251 kilometres long. "
    "Captain Cuvpeino Sheskley commanded the Fourtpaendkra. The population of Grunford is 805,002."
)
NAMES = "Flirtfin|Cuvpeino Sheskley|Fourtpaendkra|Grunford"


def _example(question: str, answer: str, asked: str) -> QAExample:
    meta = {"fact_type": "river", "n_facts": "3", "names": NAMES, "asked_names": asked}
    return QAExample(DOCUMENT, question, answer, "facts", 0.5, meta)


RIVER = _example("How long is the Flirtfin River?", "251", "Flirtfin")
CAPTAIN = _example("Which captain commanded the Fourtpaendkra?", "Cuvpeino Sheskley", "Fourtpaendkra")


@pytest.mark.parametrize(
    ("example", "answer", "grounded_right", "kind"),
    [
        (RIVER, "The Flirtfin River is 257 kilometres long.", True, "near miss"),
        (RIVER, "The Flirtfin River is 805,002 kilometres long.", False, "another fact"),  # Grunford's population
        (RIVER, "The Flirtfin River is 40 kilometres long.", False, "another fact"),  # the prose's number
        (RIVER, "The Flirtfin River is 2,287 kilometres long.", False, "neither"),
        (RIVER, "The Flirtfin River is long.", False, "neither"),
        (CAPTAIN, "The Fourtpaendkra was commanded by Captain Grunford.", False, "another fact"),
        # the ship's name is the question's own, not another fact's
        (CAPTAIN, "The Fourtpaendkra was commanded by Captain Thostiath.", False, "neither"),
        (CAPTAIN, "Captain Cuvpeo Sheskley.", True, "near miss"),
    ],
)
def test_miss_kind(example: QAExample, answer: str, grounded_right: bool, kind: str) -> None:
    assert miss_kind(example, answer, grounded_right) == kind


def _run(path: Path, sha: str, set_path: Path, mode: str, right: list[bool], answers: list[str]) -> Path:
    result = {"right": right, "grounded_right": [False] * len(right), "answers": answers}
    run = {
        "niah": {},
        "facts": {mode: {"256": result}},
        "settings": {"facts_n": len(right), "facts_set": {"path": str(set_path), "sha256": sha}},
    }
    path.write_text(json.dumps(run))
    return path


def test_misses_pair_the_runs_on_their_saved_set_and_count_only_what_in_context_got(tmp_path, capsys) -> None:
    set_path = tmp_path / "set.json"
    sha = save_facts_set(FactsSet({256: [RIVER, CAPTAIN, RIVER]}, "heldout"), set_path)
    answers = ["The Flirtfin River is 40 kilometres long.", "Captain Grunford.", "The Flirtfin River is 9 km long."]
    adapter = _run(tmp_path / "a.json", sha, set_path, "adapter", [False, False, False], answers)
    in_context = _run(tmp_path / "b.json", sha, set_path, "in_context", [True, True, False], ["", "", ""])
    found = misses(adapter, in_context)
    assert found.counts["number"] == {"another fact": 1} and found.counts["name"] == {"another fact": 1}
    main([str(adapter), str(in_context), "--examples", "2"])
    out = capsys.readouterr().out
    assert "| all | 2 | 0 | 2 | 0 |" in out and "Captain Grunford." in out

    other = _run(tmp_path / "c.json", "f" * 64, set_path, "in_context", [True, True, False], ["", "", ""])
    with pytest.raises(ValueError, match="did not ask the same questions"):
        misses(adapter, other)
    stale = _run(tmp_path / "d.json", "f" * 64, set_path, "adapter", [False] * 3, answers)
    with pytest.raises(ValueError, match="asked saved set ffffffffffff"):
        misses(stale, _run(tmp_path / "e.json", "f" * 64, set_path, "in_context", [True] * 3, [""] * 3))
    with pytest.raises(SystemExit, match="did not ask the same questions"):
        main([str(adapter), str(other)])


def test_runs_without_answers_or_without_a_shared_length_are_refused(tmp_path) -> None:
    set_path = tmp_path / "set.json"
    sha = save_facts_set(FactsSet({256: [RIVER]}, "heldout"), set_path)
    in_context = _run(tmp_path / "b.json", sha, set_path, "in_context", [True], [""])
    old = json.loads(_run(tmp_path / "a.json", sha, set_path, "adapter", [False], ["x"]).read_text())
    del old["facts"]["adapter"]["256"]["answers"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="keep no answers"):
        misses(tmp_path / "old.json", in_context)
    with pytest.raises(ValueError, match="no facts length scored"):
        misses(in_context, in_context)  # an in-context run holds no adapter answers
