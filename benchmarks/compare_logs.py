"""Two training runs on the same data, compared step by step: did a change of network lower the KL, or get more
answers right?

    python -m benchmarks.compare_logs docs/training_logs/stage_r5_batch64.jsonl R6/log.jsonl

Runs with the same seed, batch size and pool settings draw the same pools and train on the same examples at every
step (the pool's seed and a step's draw depend on the seed and the step only), so their logged KLs pair up step by
step, and the data's own noise, which dwarfs a small gain at any one step, cancels in the pairing. Per kind of data
(`loss`, `kl_facts`, ...) and per kind of greedy agreement (`top1_facts`, the share of answer tokens the student's
likeliest token gets right; `exact_facts`, the share of whole answers): the mean over the steps both logged, how many
of those steps each run was better (lower KL, higher agreement; the rest are ties), and the exact sign test on that
split; `--up-to` keeps the steps before a point (e.g. where one run began to anneal), `--from` the steps after one.
A pool is drawn again every `pool_refresh_steps`; within a pool the same examples come back (~5 times over 400 steps
of batch 64 from ~4700 kept), so agreement climbs there on examples the student has already trained on: the steps
just after a refresh (e.g. `--from 401 --up-to 472`, about one pass) show a change on examples it has not seen. A
run that trains at a `teacher_temperature` other than 1 moves its student away from the teacher's own distribution
on purpose, so its KL (logged at temperature 1) rises whether or not it gets more answers right: compare such runs
by their agreement.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from benchmarks.compare import sign_test
from d2l_rag.training.logs import training_rows

__all__ = ["PairedLog", "compare_logs"]

HIGHER_IS_BETTER = ("top1_", "exact_")  # the greedy agreement a step logs per kind; loss and KLs are better lower


@dataclass(frozen=True)
class PairedLog:
    """One logged quantity over the steps both runs logged it."""

    key: str
    steps: int
    mean_a: float
    mean_b: float
    better_b: int  # steps where B was better: lower, or higher for the agreement keys
    better_a: int  # steps where A was better; the other steps are ties
    p: float


def compare_logs(
    a: dict[int, dict[str, float]],
    b: dict[int, dict[str, float]],
    up_to: int | None = None,
    since: int | None = None,
) -> list[PairedLog]:
    """The loss, every per-kind KL and agreement both runs logged, paired over the steps both logged (from
    `since`, up to `up_to`)."""
    shared = a.keys() & b.keys()
    if not shared:
        raise ValueError("the two logs share no logged step: were they run with the same log_every?")
    steps = sorted(s for s in shared if (up_to is None or s <= up_to) and (since is None or s >= since))
    if not steps:
        raise ValueError(
            f"no step both logged lies between {since} and {up_to}: they share steps {min(shared)}-{max(shared)}"
        )
    # a kind missing from a step's batch is missing from its row: take every kind some paired step has
    logged = sorted({k for s in steps for k in a[s].keys() & b[s].keys()})
    keys = ["loss", *(k for prefix in ("kl_", *HIGHER_IS_BETTER) for k in logged if k.startswith(prefix))]
    out = []
    for key in keys:
        pairs = [(a[s][key], b[s][key]) for s in steps if key in a[s] and key in b[s]]
        higher = key.startswith(HIGHER_IS_BETTER)
        better_b = sum(y > x if higher else y < x for x, y in pairs)
        better_a = sum(x > y if higher else x < y for x, y in pairs)
        mean_a, mean_b = (sum(side) / len(pairs) for side in zip(*pairs, strict=True))
        out.append(PairedLog(key, len(pairs), mean_a, mean_b, better_b, better_a, sign_test(better_a, better_b)))
    return out


def markdown(rows: list[PairedLog], name_a: str, name_b: str) -> str:
    lines = [
        f"A = {name_a}, B = {name_b}",
        "",
        "| logged | steps | A mean | B mean | B better at | A better at | p (sign test) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        means = f"{r.mean_a:.4f} | {r.mean_b:.4f}"
        lines.append(f"| {r.key} | {r.steps} | {means} | {r.better_b} of {r.steps} | {r.better_a} | {r.p:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="log.jsonl of the first run")
    parser.add_argument("b", type=Path, help="log.jsonl of the second run (same seed and data settings)")
    parser.add_argument("--up-to", type=int, default=None, help="only steps up to this one")
    parser.add_argument("--from", dest="since", type=int, default=None, help="only steps from this one on")
    args = parser.parse_args(argv)
    try:
        rows = compare_logs(training_rows(args.a), training_rows(args.b), args.up_to, args.since)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    print(markdown(rows, str(args.a), str(args.b)))


if __name__ == "__main__":
    main()
