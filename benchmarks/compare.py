"""Two runs of `benchmarks.niah` on the same questions, compared question by question.

    python -m benchmarks.compare OLD/niah.json NEW/niah.json            # the adapter, needles and facts
    python -m benchmarks.compare OLD/niah.json NEW/niah.json --mode in_context
    python -m benchmarks.compare OLD/niah.json NEW/niah.json --also OLD2/niah.json NEW2/niah.json   # pooled too

Two checkpoints a few points apart on 100 questions may differ by chance alone. Pairing the questions tells more
than the two accuracies: only the questions one run got right and the other missed carry the difference, and the
exact sign test on them says how often chance alone would split them as unevenly. Facts compare only when both runs
asked one saved set (a fresh draw depends on the machine's prose); needles when both asked as many a length (their
draw is seeded by the length). `--also` adds pairs of runs on other question sets (e.g. the saved draws of other
seeds, benchmarks/data/facts_heldout_seed*.json) and pools every section over all pairs: 200 questions cannot tell
two checkpoints 3 points apart, 800 can.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Paired", "compare_runs", "load_run", "markdown", "pooled", "same_questions", "sign_test"]


@dataclass(frozen=True)
class Paired:
    """One section and length of two runs: how many questions each got right, and which."""

    section: str  # "niah", "word_niah" or "facts"
    length: str  # document tokens, or "all" for a section's total
    n: int
    right_a: int
    right_b: int
    only_a: int
    only_b: int

    @property
    def p_value(self) -> float:
        return sign_test(self.only_a, self.only_b)


def sign_test(only_a: int, only_b: int) -> float:
    """Two-sided exact sign test on the discordant pairs: the chance of a split at least this uneven."""
    d = only_a + only_b
    if d == 0:
        return 1.0
    tail = sum(math.comb(d, i) for i in range(min(only_a, only_b) + 1)) / 2**d
    return min(1.0, 2 * tail)


def load_run(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or not {"niah", "facts", "settings"} <= data.keys():
        raise ValueError(f"{path}: not a benchmarks.niah result (no niah, facts and settings)")
    return data


def same_questions(a: dict[str, Any], b: dict[str, Any], section: str) -> str | None:
    """Why the two runs did not ask the same questions of `section`, or None when they did."""
    sa, sb = a["settings"], b["settings"]
    if section in ("niah", "word_niah"):
        if sa.get("n_per_length") != sb.get("n_per_length"):
            return f"needles: {sa.get('n_per_length')} a length against {sb.get('n_per_length')}"
        return None
    set_a, set_b = sa.get("facts_set"), sb.get("facts_set")
    if set_a is None or set_b is None:
        return "facts: a run drew its questions on its own machine; compare runs on one saved set"
    if set_a["sha256"] != set_b["sha256"]:
        return f"facts: saved set {set_a['sha256'][:12]} against {set_b['sha256'][:12]}"
    if sa.get("facts_n") != sb.get("facts_n"):
        return f"facts: {sa.get('facts_n')} a length against {sb.get('facts_n')}"
    return None


def compare_runs(a: dict[str, Any], b: dict[str, Any], mode: str = "adapter") -> tuple[list[Paired], list[str]]:
    """Paired counts for every length both runs scored in `mode`, with each section's total; and the reasons a
    section was left out. Raises ValueError when a run holds no per-question results to pair."""
    rows: list[Paired] = []
    skipped: list[str] = []
    for section in ("niah", "word_niah", "facts"):
        table_a, table_b = a.get(section, {}).get(mode) or {}, b.get(section, {}).get(mode) or {}
        lengths = sorted(set(table_a) & set(table_b), key=int)
        lengths = [k for k in lengths if table_a[k] and table_b[k]]  # None: in context beyond the window
        if not lengths:
            continue
        reason = same_questions(a, b, section)
        if reason:
            skipped.append(reason)
            continue
        section_rows = []
        for length in lengths:
            ra, rb = table_a[length].get("right"), table_b[length].get("right")
            if ra is None or rb is None:
                raise ValueError(
                    f"{section} at {length} tokens: a run holds no per-question results (written before they were "
                    "kept); run benchmarks.niah again"
                )
            if len(ra) != len(rb):
                raise ValueError(f"{section} at {length} tokens: {len(ra)} questions against {len(rb)}")
            section_rows.append(
                Paired(
                    section,
                    length,
                    len(ra),
                    sum(ra),
                    sum(rb),
                    sum(x and not y for x, y in zip(ra, rb, strict=True)),
                    sum(y and not x for x, y in zip(ra, rb, strict=True)),
                )
            )
        rows += section_rows
        if len(section_rows) > 1:
            total = [sum(getattr(r, f) for r in section_rows) for f in ("n", "right_a", "right_b", "only_a", "only_b")]
            rows.append(Paired(section, "all", *total))
    return rows, skipped


def pooled(pairs: list[list[Paired]]) -> list[Paired]:
    """Each section summed over several comparisons (their own totals, or their one length), as length "pooled"."""
    sums: dict[str, list[int]] = {}
    for rows in pairs:
        by_section: dict[str, Paired] = {}
        for r in rows:  # a section's "all" row comes after its lengths and replaces a lone length
            if r.length == "all" or r.section not in by_section:
                by_section[r.section] = r
        for section, r in by_section.items():
            fields = (r.n, r.right_a, r.right_b, r.only_a, r.only_b)
            sums[section] = [s + f for s, f in zip(sums.get(section, [0] * 5), fields, strict=True)]
    return [Paired(section, "pooled", *fields) for section, fields in sums.items()]


def markdown(rows: list[Paired], skipped: list[str], name_a: str, name_b: str, mode: str) -> str:
    lines = [
        f"# {mode}: A = {name_a}, B = {name_b}",
        "",
        "| section | tokens | n | A right | B right | only A | only B | p (sign test) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.section} | {r.length} | {r.n} | {r.right_a} | {r.right_b} | {r.only_a} | {r.only_b} "
            f"| {r.p_value:.3f} |"
        )
    lines += [f"\nNot compared: {reason}" for reason in skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path, help="niah.json of the first run (e.g. the shipped checkpoint)")
    parser.add_argument("b", type=Path, help="niah.json of the second run (e.g. a candidate)")
    parser.add_argument("--mode", default="adapter", choices=("adapter", "in_context", "no_document"))
    parser.add_argument(
        "--also", nargs=2, type=Path, action="append", default=[], metavar=("A", "B"), help="another pair, pooled"
    )
    args = parser.parse_args(argv)
    pairs = [(args.a, args.b), *map(tuple, args.also)]
    compared = []
    for path_a, path_b in pairs:
        try:
            rows, skipped = compare_runs(load_run(path_a), load_run(path_b), args.mode)
        except ValueError as err:
            raise SystemExit(str(err)) from None
        if not rows:
            reason = "; ".join(skipped) or "no length in common"
            raise SystemExit(f"{path_a} and {path_b}: nothing to compare in mode {args.mode}: {reason}")
        print(markdown(rows, skipped, str(path_a), str(path_b), args.mode))
        compared.append(rows)
    if len(compared) > 1:
        names = " + ".join(str(a) for a, _ in pairs), " + ".join(str(b) for _, b in pairs)
        print(markdown(pooled(compared), [], *names, args.mode), end="")


if __name__ == "__main__":
    main()
