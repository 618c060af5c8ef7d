"""Draw docs/training_loss.png: the logged KL of every stage the shipped checkpoint went through, chained.

The stages and their step counts come from the checkpoint's own `training.lineage`, so the plot cannot disagree
with what was shipped. Usage: `python scripts/plot_training_loss.py [CHECKPOINT_DIR] [--out PNG]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from d2l_rag.training.logs import training_rows

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = ROOT / "d2l_rag" / "checkpoints" / "smollm2-135m-instruct"


def stage_curves(checkpoint: Path, logs: Path) -> list[tuple[str, list[int], list[float]]]:
    """(label, chained steps, loss) per stage in the checkpoint's lineage, cut at the steps it kept.

    A stage marked `log_lost` (its machine went with the log) has no curve but keeps its place on the step axis."""
    lineage = json.loads((checkpoint / "config.json").read_text())["training"]["lineage"]
    curves, offset = [], 0
    for stage in lineage:
        if stage.get("log_lost"):  # its steps still count, so the stages after it stay where they ran
            offset += stage["steps"]
            continue
        log = logs / f"stage_{stage['stage']}.jsonl"
        if not log.is_file():
            raise FileNotFoundError(f"no training log for stage {stage['stage']!r}: expected {log}")
        rows = [r for step, r in training_rows(log).items() if step <= stage["steps"]]
        cfg = json.loads((ROOT / stage["config"]).read_text())
        label = (
            f"{stage['stage']}: {cfg['min_doc_tokens']}-{cfg['max_doc_tokens']} tokens, "
            f"<= {cfg['max_chunks']} chunks, batch {cfg['batch_size']}"
        )
        curves.append((label, [offset + r["step"] for r in rows], [r["loss"] for r in rows]))
        offset += stage["steps"]
    return curves


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path, nargs="?", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--logs", type=Path, default=ROOT / "docs" / "training_logs")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "training_loss.png")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8))
    curves = stage_curves(args.checkpoint, args.logs)
    colors = plt.get_cmap("tab20" if len(curves) > 10 else "tab10").colors
    for i, (label, steps, loss) in enumerate(curves):
        ax.plot(steps, loss, marker=".", label=label, color=colors[i % len(colors)])
    ax.set_xlabel("optimizer step (stages chained; each stage has its own data mix, so levels differ)")
    ax.set_ylabel("KL on answer tokens")
    ax.set_title("SmolLM2-135M hypernetwork: training loss (as logged: every 20 steps, every step from R8 on)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
