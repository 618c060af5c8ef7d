"""One measurement's files: its data as JSON and its report as markdown, side by side in its results folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["save_result"]


def save_result(out: Path, name: str, data: dict[str, Any], report: str) -> None:
    """Write `out/name.json` and `out/name.md` (creating `out`) and print the report."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / f"{name}.md").write_text(report)
    print(report)
