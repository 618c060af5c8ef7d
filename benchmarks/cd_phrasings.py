"""Can a LoRA of the hypernetwork's shape hold a planted name or code at all? Per-document context distillation.

For saved held-out facts questions that the model answers right in context, a fresh rank-8 `mlp.down_proj` LoRA
(`StandardCDBaseline`, the hypernetwork's adapter shape) is trained on this one document with the asked fact's
*other* phrasings and every question about the document's other facts, then asked the held-out phrasing and one seen
phrasing with no document in the prompt, after several step counts. If gradient steps on one document get the
answer where the hypernetwork's one forward pass does not, the adapter's form is not what limits facts: the
hypernetwork's amortisation is.

The saved set (benchmarks/data/facts_heldout.json) keeps documents and questions, not the facts' other phrasings, so
the examples are drawn again as `facts_eval` draws them, recording each `Fact` as it is made; each redrawn example is
checked against the saved one (another Python's prose draws other documents, and the probe refuses).

    python -m benchmarks.cd_phrasings --length 256 --steps 150 --snapshots 30,75 --items 15,29,35 --out X.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import d2l_rag.training.facts as facts_module
from benchmarks.facts_set import DEFAULT_FACTS_SET, load_facts_set
from d2l_rag.baselines.context_distillation import CDConfig, StandardCDBaseline
from d2l_rag.model import load_base_model
from d2l_rag.training.evaluate import facts_examples
from d2l_rag.training.examples import QAExample
from d2l_rag.training.facts import Fact
from d2l_rag.training.pool import token_counter
from d2l_rag.training.scoring import answer_contains, answer_form


def redraw_with_facts(count: Callable[[str], int], length: int, n: int) -> list[tuple[QAExample, list[Fact]]]:
    """`facts_examples(count, length, n)`'s examples, each with its facts (the asked one first)."""
    made: list[Fact] = []
    make_fact = facts_module.make_fact

    def recording(*args: Any, **kwargs: Any) -> Fact:
        made.append(make_fact(*args, **kwargs))
        return made[-1]

    facts_module.make_fact = recording
    try:
        examples = facts_examples(count, length, n)
    finally:
        facts_module.make_fact = make_fact
    drawn, first = [], 0
    for example in examples:  # each example made its n_facts facts in turn, the asked one first
        last = first + int(example.meta["n_facts"])
        drawn.append((example, made[first:last]))
        first = last
    return drawn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=256, help="saved-set document length")
    parser.add_argument("--n", type=int, default=100, help="examples of the saved set to consider")
    parser.add_argument("--items", default="", help="indices to probe (default: names, codes, dates right in context)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--snapshots", default="30,75", help="earlier step counts to ask at as well")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    lm = load_base_model(None)
    saved = load_facts_set(DEFAULT_FACTS_SET)[args.length][: args.n]
    drawn = redraw_with_facts(token_counter(lm), args.length, len(saved))
    for i, ((example, _), kept) in enumerate(zip(drawn, saved, strict=True)):
        if (example.document, example.question) != (kept.document, kept.question):
            raise SystemExit(f"example {i} redrawn differs from the saved set: this Python's prose is not the set's")
    items = {int(i) for i in args.items.split(",") if i} or set(range(len(saved)))
    snapshots = tuple(sorted({int(s) for s in args.snapshots.split(",") if s} | {args.steps}))
    torch.manual_seed(0)
    cd = StandardCDBaseline(lm, CDConfig(steps=args.steps, lr=args.lr, batch_size=16, snapshots=snapshots))
    rows: list[dict[str, Any]] = []
    for i, (example, facts) in enumerate(drawn):
        asked = facts[0]
        others = [q for q, a in asked.questions if q != example.question and a == example.answer]
        if i not in items or not others or (not args.items and answer_form(example.answer) == "number"):
            continue
        in_context = cd.generator.answer(example.question, context=example.document).text
        if not args.items and not answer_contains(in_context, example.answer):
            continue
        start = time.perf_counter()
        distilled = cd.distill(example.document, questions=others + [q for f in facts[1:] for q, _ in f.questions])
        asked_at = []
        for snap in distilled.snapshots:
            held_out = cd.generator.answer(example.question, adapter=snap.adapter).text
            seen = cd.generator.answer(others[0], adapter=snap.adapter).text
            asked_at.append(
                {
                    "step": snap.step,
                    "held_out": held_out,
                    "held_out_right": answer_contains(held_out, example.answer),
                    "seen": seen,
                    "seen_right": answer_contains(seen, example.answer),
                }
            )
        rows.append(
            {
                "item": i,
                "question": example.question,
                "seen_question": others[0],
                "reference": example.answer,
                "form": answer_form(example.answer),
                "train_questions": len(distilled.questions),
                "in_context": in_context,
                "in_context_right": answer_contains(in_context, example.answer),
                "kl_first_last": [distilled.losses[0], distilled.losses[-1]],
                "snapshots": asked_at,
                "seconds": time.perf_counter() - start,
            }
        )
        marks = " ".join(f"{a['step']}:{int(a['held_out_right'])}{int(a['seen_right'])}" for a in asked_at)
        print(f"item {i} {rows[-1]['form']}: held-out/seen right at step {marks}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
