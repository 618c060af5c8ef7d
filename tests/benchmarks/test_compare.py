"""Paired comparison of two benchmark runs: counts, the sign test, and refusals when the questions differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.compare import compare_runs, main, pooled, sign_test

SET = {"path": "benchmarks/data/facts_heldout.json", "sha256": "073cdda222669c3f"}


def _run(facts_right: dict[str, list[bool]], needles_right: list[bool] | None = None, facts_set=SET) -> dict:
    def result(right: list[bool]) -> dict:
        return {"accuracy": sum(right) / len(right), "n": len(right), "right": right}

    niah = {"adapter": {"1024": result(needles_right)}} if needles_right else {"adapter": {}}
    return {
        "niah": niah,
        "facts": {"adapter": {k: result(v) for k, v in facts_right.items()}, "in_context": {"256": None}},
        "settings": {"n_per_length": len(needles_right or []), "facts_n": 4, "facts_set": facts_set},
    }


def test_sign_test_matches_the_binomial_tail() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 3) == 1.0
    assert sign_test(0, 5) == pytest.approx(2 / 32)  # all five discordant pairs one way
    assert sign_test(1, 9) == pytest.approx(2 * 11 / 1024)
    assert sign_test(9, 1) == sign_test(1, 9)


def test_counts_pair_the_questions_and_total_each_section() -> None:
    a = _run({"256": [True, True, False, False], "1024": [True, False, False, False]}, [True, True])
    b = _run({"256": [True, False, True, True], "1024": [True, True, False, False]}, [True, False])
    rows, skipped = compare_runs(a, b)
    assert skipped == []
    by_key = {(r.section, r.length): r for r in rows}
    facts_256 = by_key[("facts", "256")]
    assert (facts_256.right_a, facts_256.right_b, facts_256.only_a, facts_256.only_b) == (2, 3, 1, 2)
    total = by_key[("facts", "all")]
    assert (total.n, total.right_a, total.right_b, total.only_a, total.only_b) == (8, 3, 5, 1, 3)
    needles = by_key[("niah", "1024")]
    assert (needles.only_a, needles.only_b) == (1, 0)
    assert ("niah", "all") not in by_key  # one length: no total row


def test_facts_drawn_on_a_machine_or_from_another_set_are_not_compared() -> None:
    a = _run({"256": [True, False, False, False]}, [True])
    for other in (None, {"path": "x.json", "sha256": "ffff"}):
        rows, skipped = compare_runs(a, _run({"256": [True, True, False, False]}, [True], facts_set=other))
        assert [r.section for r in rows] == ["niah"]
        assert len(skipped) == 1 and skipped[0].startswith("facts:")


def test_runs_written_before_per_question_results_are_refused() -> None:
    a = _run({"256": [True, False, False, False]})
    b = _run({"256": [True, False, False, False]})
    del b["facts"]["adapter"]["256"]["right"]
    with pytest.raises(ValueError, match="no per-question results"):
        compare_runs(a, b)


def test_the_command_prints_a_table_and_names_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path_a, path_b = tmp_path / "a.json", tmp_path / "b.json"
    path_a.write_text(json.dumps(_run({"256": [True, False, False, False]})))
    path_b.write_text(json.dumps(_run({"256": [True, True, True, False]})))
    main([str(path_a), str(path_b)])
    assert "| facts | 256 | 4 | 1 | 3 | 0 | 2 | 0.500 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no such file"):
        main([str(path_a), str(tmp_path / "missing.json")])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="not JSON"):
        main([str(path_a), str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit, match="nothing to compare in mode no_document"):
        main([str(path_a), str(path_b), "--mode", "no_document"])


def test_pairs_on_other_sets_are_pooled_section_by_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = {"path": "benchmarks/data/facts_heldout_seed1.json", "sha256": "0123456789abcdef"}
    runs = {
        "a1": _run({"256": [True, False, False, False], "1024": [True, True, False, False]}),
        "b1": _run({"256": [True, True, True, False], "1024": [True, False, False, False]}),
        "a2": _run({"256": [False, False, False, False]}, facts_set=other),
        "b2": _run({"256": [True, True, False, False]}, facts_set=other),
    }
    for name, run in runs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
    first, _ = compare_runs(runs["a1"], runs["b1"])
    second, _ = compare_runs(runs["a2"], runs["b2"])
    (facts,) = pooled([first, second])
    # set 1 in all: 3 vs 4 right, 1 only A, 2 only B; set 2 (one length): 0 vs 2, 0 and 2
    assert (facts.section, facts.length, facts.n, facts.right_a, facts.right_b) == ("facts", "pooled", 12, 3, 6)
    assert (facts.only_a, facts.only_b) == (1, 4)
    main(
        [
            str(tmp_path / "a1.json"),
            str(tmp_path / "b1.json"),
            "--also",
            str(tmp_path / "a2.json"),
            str(tmp_path / "b2.json"),
        ]
    )
    out = capsys.readouterr().out
    assert "| facts | pooled | 12 | 3 | 6 | 1 | 4 | 0.375 |" in out
    assert out.count("# adapter:") == 3  # each pair, then the pool
