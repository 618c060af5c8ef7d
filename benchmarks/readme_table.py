"""Render the README's headline table from the latest benchmark results, between the bench-table markers.

`python -m benchmarks.readme_table [--results PATH ...] [--readme README.md]` rewrites only the lines between
`<!-- bench-table -->` and `<!-- /bench-table -->`, so the numbers in the README are never typed by hand. By default
it uses the newest results.json under benchmarks/results/ (by its timestamp), preferring real profiles to `tiny`,
and adds the target rows of the newest report of every other real profile (targets such as per-question latency are
stated for one device, so a GPU report does not replace the CPU one's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.report import METHOD_LABELS

__all__ = ["END", "START", "latest_by_profile", "latest_results", "render_table", "render_targets", "update_readme"]

START, END = "<!-- bench-table -->", "<!-- /bench-table -->"
RESULTS_DIR = Path(__file__).parent / "results"


def _found(results_dir: Path) -> dict[Path, dict[str, Any]]:
    found = {path: json.loads(path.read_text()) for path in sorted(results_dir.glob("*/results.json"))}
    if not found:
        raise FileNotFoundError(f"no results.json under {results_dir}: run `python -m benchmarks.run` first")
    return found


def latest_results(results_dir: Path = RESULTS_DIR) -> Path:
    found = _found(results_dir)
    return max(found, key=lambda p: (found[p]["profile"]["name"] != "tiny", found[p]["environment"]["timestamp"]))


def latest_by_profile(results_dir: Path = RESULTS_DIR) -> dict[str, Path]:
    """The newest results.json of each profile."""
    newest: dict[str, Path] = {}
    for path, data in sorted(_found(results_dir).items(), key=lambda item: item[1]["environment"]["timestamp"]):
        newest[data["profile"]["name"]] = path
    return newest


def _device(env: dict[str, Any]) -> str:
    return env["gpu"] if env.get("gpu") else f"CPU ({env['cpu_count']} cores)"


def _targets(results: dict[str, Any]) -> list[str]:
    lines = ["| target | status | measured |", "|---|---|---|"]
    return lines + [f"| {t['goal']} | {t['status']} | {t['measured']} |" for t in results.get("targets", [])]


def render_targets(results: dict[str, Any], source: str, checkpoint_above: str | None = None) -> str:
    """The target rows of a second report (another device), under a line naming it, and naming its checkpoint
    when it is not the one of the table above (a report is not re-run on every device each time one ships)."""
    env = results["environment"]
    checkpoint = results["model"]["checkpoint_id"]
    other = f", checkpoint `{checkpoint}` (not the one above)" if checkpoint != checkpoint_above else ""
    head = (
        f"Targets in the latest `{results['profile']['name']}` report, on {_device(env)}, {env['timestamp'][:10]}"
        f"{other} ([{source}]({source})):"
    )
    return "\n".join([head, "", *_targets(results)])


def _em(summary: dict[str, Any] | None) -> str:
    return f"{summary['em']:.2f}" if summary and summary.get("n") else "-"


def render_table(results: dict[str, Any], source: str) -> str:
    env, acc = results["environment"], results.get("accuracy", {})
    device = _device(env)
    lines = [
        f"Measured by `python -m benchmarks.run --profile {results['profile']['name']}` on {device}, "
        f"{env['timestamp'][:10]}; base model {results['model']['name']} (fingerprint "
        f"`{results['model']['fingerprint']}`), checkpoint "
        f"`{results['model']['checkpoint_id']}`. Full report: [{source}]({source}).",
        "",
        "| method | EM, held-out facts | EM, real texts | update per document (s) | answer (s) |",
        "|---|---|---|---|---|",
    ]
    methods = list(dict.fromkeys(m for data in acc.values() for m in data["methods"]))
    if not results["d2l"]["accuracy_scored"] and "d2l" not in methods:
        methods.insert(0, "d2l")
    for method in methods:
        cells = []
        for dataset in ("facts", "real"):
            summary = acc.get(dataset, {}).get("methods", {}).get(method)
            cells.append(_em(summary) if method != "d2l" or results["d2l"]["accuracy_scored"] else "no checkpoint")
        summaries = [acc[d]["methods"][method] for d in acc if method in acc[d]["methods"]]
        update = max((s.get("update_s_median", 0.0) for s in summaries), default=None)
        answer = max((s.get("answer_s_median", 0.0) for s in summaries), default=None)
        label = METHOD_LABELS.get(method, method) + (" ¹" if method == "standard_cd" else "")
        lines.append(
            f"| {label} | {cells[0]} | {cells[1]} | "
            f"{'-' if update is None else f'{update:.2f}'} | {'-' if answer is None else f'{answer:.2f}'} |"
        )
    lines += ["", *_targets(results)]
    if any(m == "standard_cd" for m in methods):
        lines += [
            "",
            f"¹ on the first {results['profile']['cd_docs']} documents of each set, "
            f"{results['profile']['cd']['steps']} training steps.",
        ]
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> None:
    text = readme.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise ValueError(f"{readme} has no '{START}' ... '{END}' block to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme_table", description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=None, help="results.json (default: the latest)")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    path = args.results or latest_results()
    results = json.loads(path.read_text())

    def source(results_path: Path) -> str:
        report = results_path.parent / "REPORT.md"
        try:
            return report.resolve().relative_to(args.readme.resolve().parent).as_posix()
        except ValueError:
            return str(report)

    parts = [render_table(results, source(path))]
    if args.results is None:
        for name, other in latest_by_profile().items():
            if name not in ("tiny", results["profile"]["name"]):
                other_results = json.loads(other.read_text())
                parts.append(render_targets(other_results, source(other), results["model"]["checkpoint_id"]))
    update_readme(args.readme, "\n\n".join(parts))
    print(f"updated {args.readme} from {path}")


if __name__ == "__main__":
    main()
