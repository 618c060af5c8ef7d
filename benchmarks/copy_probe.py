"""Where does the adapter copy a name or code it reads? Text around it (filler or prose) x question (magic or fact).

    python -m benchmarks.copy_probe --checkpoint runs/k/checkpoint --out benchmarks/results/copy_probe_k
    python -m benchmarks.copy_probe --checkpoint A --checkpoint B --modes adapter     # several, adapter only

Four settings, held-out names and codes only, one value per document: the magic word in the needle's filler lines
(what the copy drill trains), the magic word planted in real prose, a fact whose answer is a name or code (badge,
birth town, capital, captain, vault code) on a line of the filler, and the same kind of fact in prose (what the
facts benchmark asks). A checkpoint that copies in the first setting only has learned the drill, not the copy.
The prose comes from this machine's Python and packages, so compare checkpoints measured on one machine.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.result_files import save_result

SETTINGS = ("word_filler", "word_prose", "fact_filler", "fact_prose")
NAME_FACTS = ("badge", "birth", "capital", "ship", "vault")  # their asked answers spell a name, town or code
MODES = ("adapter", "in_context")
SEED = 991


def probe_examples(count_tokens: Callable[[str], int], setting: str, n: int, length: int) -> list[Any]:
    """`n` held-out examples of `setting`, each setting drawn from its own seed (adding one shifts no other)."""
    from d2l_rag.training.copy_bridges import make_word_in_prose_example
    from d2l_rag.training.facts import make_facts_example
    from d2l_rag.training.needle import make_needle_example
    from d2l_rag.training.scoring import answer_form

    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    rng = random.Random(SEED + SETTINGS.index(setting))
    out = []
    while len(out) < n:
        kind = NAME_FACTS[len(out) % len(NAME_FACTS)]
        if setting == "word_filler":
            ex = make_needle_example(rng, length, count_tokens, split="heldout", magic="word")
        elif setting == "word_prose":
            ex = make_word_in_prose_example(rng, length, count_tokens, "heldout")
        elif setting == "fact_filler":
            ex = make_facts_example(rng, length, count_tokens, "heldout", 1, kind, setting="filler")
        else:
            ex = make_facts_example(rng, length, count_tokens, "heldout", 1, kind)
        if answer_form(ex.answer) in ("name", "code"):  # a birth is also asked as a date: drawn again
            out.append(ex)
    return out


def run(model: str | None, checkpoints: list[str], n: int, length: int, modes: tuple[str, ...]) -> dict[str, Any]:
    import torch

    from d2l_rag.model import load_base_model, load_checkpoint
    from d2l_rag.training.evaluate import facts_eval
    from d2l_rag.training.pool import token_counter

    lm = load_base_model(model)
    count = token_counter(lm)
    examples = {setting: probe_examples(count, setting, n, length) for setting in SETTINGS}
    results: dict[str, Any] = {}
    for i, checkpoint in enumerate(checkpoints):
        hypernet = load_checkpoint(checkpoint, lm)
        asked = modes if i == 0 else tuple(m for m in modes if m != "in_context")  # in context: no checkpoint
        per_setting: dict[str, Any] = {}
        for setting, exs in examples.items():
            start = time.perf_counter()
            with torch.no_grad():
                scored = facts_eval(lm, hypernet, [length], n, modes=asked, examples={length: exs})
            per_setting[setting] = {}
            for mode, by_length in scored.items():
                scores = by_length[str(length)]
                per_setting[setting][mode] = {
                    "right": sum(scores["right"]),
                    "n": scores["n"],
                    "per_example": scores["right"],
                    "sample_answer": scores["sample_answer"],
                }
            print(
                f"{checkpoint} {setting}: {per_setting[setting]['adapter']['right']}/{n}"
                f" ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        results[checkpoint] = per_setting
    return {"length": length, "n": n, "model": lm.fingerprint.describe(), "checkpoints": results}


def markdown(data: dict[str, Any]) -> str:
    lines = [
        f"Held-out names and codes copied, {data['n']} a setting, {data['length']}-token documents ({data['model']}).",
        "",
        "| checkpoint | mode | " + " | ".join(SETTINGS) + " |",
        "|---|---|" + "---|" * len(SETTINGS),
    ]
    for checkpoint, per_setting in data["checkpoints"].items():
        for mode in MODES:
            if mode not in per_setting[SETTINGS[0]]:
                continue
            cells = [f"{per_setting[s][mode]['right']}/{per_setting[s][mode]['n']}" for s in SETTINGS]
            lines.append(f"| `{checkpoint}` | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.copy_probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="base model path (default: the embedded SmolLM2 GGUF)")
    parser.add_argument("--checkpoint", action="append", required=True, help="hypernetwork checkpoint dir (repeat)")
    parser.add_argument("--n", type=int, default=30, help="examples a setting")
    parser.add_argument("--length", type=int, default=256, help="document tokens")
    parser.add_argument("--modes", default=",".join(MODES), help="adapter and/or in_context, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/copy_probe"))
    args = parser.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m)
    if not modes or any(m not in MODES for m in modes) or "adapter" not in modes:
        raise SystemExit(f"--modes {args.modes!r}: adapter, optionally with in_context")
    if args.n <= 0 or args.length <= 0:
        raise SystemExit("--n and --length must be positive")
    missing = [c for c in args.checkpoint if not (Path(c) / "config.json").is_file()]
    if missing:
        raise SystemExit(f"no checkpoint (config.json) in {missing}")
    data = run(args.model, args.checkpoint, args.n, args.length, modes)
    save_result(args.out, "copy_probe", data, markdown(data))


if __name__ == "__main__":
    main()
