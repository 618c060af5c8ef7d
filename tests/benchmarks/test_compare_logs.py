"""Pairing two training logs step by step: who was lower, how often, and whether chance explains it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.compare_logs import compare_logs, main
from d2l_rag.training.logs import training_rows


def _log(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(offset: float, steps=range(20, 420, 20)) -> list[dict]:
    pool = {"step": 0, "pool_drawn": 8192, "pool_kept": 4000, "pool_draw_s": 30.0, "pool_teacher_s": 60.0}
    rows = [pool]
    for i, step in enumerate(steps):
        noise = 0.1 * ((i * 7) % 5)  # the data's own swings, shared by both runs
        row = {"step": step, "loss": 0.4 + noise + offset, "kl_facts": 0.5 + noise + 2 * offset}
        if i % 2:
            row["kl_needle"] = 0.02 + offset / 10
        rows.append(row)
    return rows


def test_a_run_lower_at_every_paired_step_is_found_despite_the_swings(tmp_path) -> None:
    a, b = training_rows(_log(tmp_path, "a.jsonl", _rows(0.0))), training_rows(_log(tmp_path, "b.jsonl", _rows(-0.01)))
    rows = {r.key: r for r in compare_logs(a, b)}
    assert list(rows) == ["loss", "kl_facts", "kl_needle"]
    assert rows["loss"].steps == 20 and rows["loss"].better_b == 20 and rows["loss"].p < 1e-5
    assert rows["kl_facts"].mean_a - rows["kl_facts"].mean_b == pytest.approx(0.02)
    assert rows["kl_needle"].steps == 10  # a kind is paired only where both logged it
    same = {r.key: r for r in compare_logs(a, a)}
    assert same["loss"].better_b == same["loss"].better_a == 0 and same["loss"].p == 1.0


def test_up_to_and_from_keep_a_window_of_steps(tmp_path) -> None:
    a, b = training_rows(_log(tmp_path, "a.jsonl", _rows(0.0))), training_rows(_log(tmp_path, "b.jsonl", _rows(0.01)))
    assert compare_logs(a, b, up_to=100)[0].steps == 5
    window = compare_logs(a, b, up_to=200, since=120)[0]
    assert window.steps == 5 and window.better_a == 5 and window.better_b == 0
    with pytest.raises(ValueError, match="between 500 and None: they share steps 20-400"):
        compare_logs(a, b, since=500)


def test_logs_that_cannot_pair_are_refused_by_name(tmp_path) -> None:
    a = training_rows(_log(tmp_path, "a.jsonl", _rows(0.0, steps=range(20, 100, 20))))
    b = training_rows(_log(tmp_path, "b.jsonl", _rows(0.0, steps=range(10, 100, 20))))
    with pytest.raises(ValueError, match="share no logged step"):
        compare_logs(a, b)


def test_the_command_prints_a_table_and_names_a_missing_log(tmp_path, capsys) -> None:
    main([str(_log(tmp_path, "a.jsonl", _rows(0.0))), str(_log(tmp_path, "b.jsonl", _rows(-0.01)))])
    out = capsys.readouterr().out
    assert "| loss | 20 |" in out and "| 20 of 20 | 0 |" in out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a.jsonl"), str(tmp_path / "missing.jsonl")])
    assert "missing.jsonl" in capsys.readouterr().err


def test_agreement_counts_as_better_when_higher_and_comes_after_the_kls(tmp_path) -> None:
    def with_agreement(rows: list[dict], shift: float) -> list[dict]:
        return [r | {"top1_facts": 0.6 + shift, "exact_facts": 0.3 + shift} if "loss" in r else r for r in rows]

    a = training_rows(_log(tmp_path, "a.jsonl", with_agreement(_rows(0.0), 0.0)))
    b = training_rows(_log(tmp_path, "b.jsonl", with_agreement(_rows(0.01), 0.05)))  # higher KL, more answers right
    rows = {r.key: r for r in compare_logs(a, b)}
    assert list(rows) == ["loss", "kl_facts", "kl_needle", "top1_facts", "exact_facts"]
    assert rows["kl_facts"].better_b == 0 and rows["top1_facts"].better_b == 20
    assert rows["exact_facts"].mean_b - rows["exact_facts"].mean_a == pytest.approx(0.05)
    assert rows["top1_facts"].p < 1e-5
