"""Reading log.jsonl back: training rows only, by step, and a broken log refused by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from d2l_rag.training.logs import training_rows


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_rows_skip_pool_and_eval_rows_and_come_in_step_order(tmp_path) -> None:
    lines = [
        json.dumps({"step": 0, "pool_drawn": 8192, "pool_kept": 4000}),
        json.dumps({"step": 40, "loss": 0.3, "kl_facts": 0.4}),
        "",
        json.dumps({"step": 20, "loss": 0.5}),
        json.dumps({"step": 40, "eval_niah": 1.0}),
        json.dumps({"step": 60, "pool_refresh_skipped_s": 90.0}),
    ]
    rows = training_rows(_write(tmp_path, lines))
    assert list(rows) == [20, 40]
    assert rows[40] == {"step": 40, "loss": 0.3, "kl_facts": 0.4}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"step": 20, "loss": 0.3}', '{"step": 40, "lo'], r"log.jsonl:2 is not a JSON line"),
        (['{"step": 20, "loss": 0.3}', "[1, 2]"], r"log.jsonl:2 is not a log row"),
        (['{"loss": 0.3}'], r"log.jsonl:1 is not a log row"),
        (['{"step": 0, "pool_kept": 4000}'], "no training rows"),
    ],
)
def test_a_broken_or_empty_log_is_refused_naming_the_file(tmp_path, lines, message) -> None:
    with pytest.raises(ValueError, match=message):
        training_rows(_write(tmp_path, lines))
