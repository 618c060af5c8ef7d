"""Reading a run's log.jsonl back: the trainer writes one JSON line per event, and only training rows carry a
`loss` (pool, eval and skipped-refresh rows do not). Plots and run comparisons read the training rows alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["training_rows"]


def training_rows(path: Path) -> dict[int, dict[str, Any]]:
    """step -> the training row logged at it, in step order; a bad line or a log without one training row is an
    error naming the file (a plot or comparison of nothing would pass for a result)."""
    rows: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number} is not a JSON line: {err}") from None
        if not isinstance(row, dict) or "step" not in row:
            raise ValueError(f"{path}:{number} is not a log row (a JSON object with a 'step')")
        if "loss" in row:
            rows[int(row["step"])] = row
    if not rows:
        raise ValueError(f"{path} holds no training rows (lines with a 'loss')")
    return dict(sorted(rows.items()))
