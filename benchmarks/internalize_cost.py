"""Internalizing vs one plain forward, by hypernetwork precision: the "<= ~1.5x a forward" target, measured alone.

    python -m benchmarks.internalize_cost                                   # the default model, CPU or GPU
    python -m benchmarks.internalize_cost --model model.gguf --out DIR      # writes DIR/internalize_cost.json

The full report (`benchmarks.run`) measures this ratio among much else; this runs in a minute, so a precision or
hypernetwork change can be judged on a rented GPU without the report's baselines. Each precision builds the same
documents, and the forward and the internalization are timed in turn (`timed_interleaved`).
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from d2l_rag.model import FrozenLM, LoadedHypernetwork

PRECISIONS = ("float32", "auto")


def measure(lm: FrozenLM, hypernet: LoadedHypernetwork, lengths: list[int], runs: int) -> list[dict[str, Any]]:
    """A row per length: the plain forward's median seconds and, per precision, internalizing's and the ratio."""
    from benchmarks.latency import document_of_length, plain_forward
    from benchmarks.timing import timed_interleaved
    from d2l_rag.adapters.builder import AdapterBuilder
    from d2l_rag.model.chunking import tokenize_document

    rows = []
    for i, length in enumerate(lengths):
        document, _ = document_of_length(lm, length, seed=1000 + i)  # the documents of the full report
        ids = tokenize_document(lm.tokenizer, document)
        if len(ids) > lm.context_window:
            raise ValueError(f"a {len(ids)}-token document does not fit the {lm.context_window}-token window")
        builders = [AdapterBuilder(lm, hypernet, batch_chunks=8, precision=p) for p in PRECISIONS]
        timed = timed_interleaved(
            [partial(plain_forward, lm, ids)] + [partial(b.build, document) for b in builders], runs, lm.device
        )
        forward = timed[0].median_s
        row: dict[str, Any] = {"tokens": len(ids), "chunks": timed[1].result.chunk_count, "forward_s": forward}
        for precision, t in zip(PRECISIONS, timed[1:], strict=True):
            row[precision] = {"internalize_s": t.median_s, "over_forward": t.median_s / forward}
        rows.append(row)
        costs = (f"{p} {row[p]['internalize_s'] * 1e3:.1f} ms = {row[p]['over_forward']:.2f}x" for p in PRECISIONS)
        print(f"{len(ids)} tokens, {row['chunks']} chunks: forward {forward * 1e3:.1f} ms; " + "; ".join(costs))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="base model path (default: the embedded SmolLM2)")
    parser.add_argument("--checkpoint", default=None, help="hypernetwork checkpoint (default: the shipped one)")
    parser.add_argument("--lengths", default="1000,4000,8000", help="document lengths in tokens, comma-separated")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (medians reported)")
    parser.add_argument(
        "--fresh-weights", action="store_true", help="time a fresh hypernetwork of the checkpoint's config"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for internalize_cost.json")
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",") if x]
    if args.runs < 1 or not lengths:
        parser.error("--runs must be >= 1 and --lengths must name at least one length")

    from benchmarks.environment import environment
    from benchmarks.subject import require_checkpoint
    from d2l_rag.model import LoadedHypernetwork, load_base_model, load_checkpoint
    from d2l_rag.model.checkpoint import read_checkpoint_config

    lm = load_base_model(args.model)
    found = require_checkpoint(lm, args.checkpoint)
    if args.fresh_weights:  # the cost depends on the shape alone; a machine that lacks the weights can still time it
        hypernet = LoadedHypernetwork.fresh(lm, read_checkpoint_config(found).hypernet)
    else:
        hypernet = load_checkpoint(found, lm)
    result = {
        "environment": environment(lm.device),
        "checkpoint": hypernet.id,
        "fresh_weights": args.fresh_weights,
        "runs": args.runs,
        "rows": measure(lm, hypernet, lengths, args.runs),
    }
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "internalize_cost.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
