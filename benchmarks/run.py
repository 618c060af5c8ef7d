"""One command for the whole comparison: `python -m benchmarks.run [--profile tiny|cpu|gpu] [--out DIR]`.

Writes results.json (every number, the machine, versions, device, checkpoint id), REPORT.md (tables and the targets
judged met or missed) and PNG plots to benchmarks/results/<profile>/. Sections that fail are recorded in the JSON and
the report rather than losing the rest of the run. Optional packages degrade: RAG uses BM25 when MiniLM is not
installed (pure Python when `bm25s` is missing), plots are skipped when matplotlib is; D2L runs on
`AdapterBuilder` + `Generator`, so the disk cache (`diskcache`) is not needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.accuracy import run_accuracy
from benchmarks.datasets import heldout_facts, real_text_qa
from benchmarks.environment import environment
from benchmarks.footprint import run_footprint
from benchmarks.latency import run_latency
from benchmarks.plots import render_plots
from benchmarks.profiles import PROFILES, Profile
from benchmarks.report import render_report
from benchmarks.subject import load_subject
from benchmarks.targets import evaluate_targets
from benchmarks.throughput import run_throughput
from d2l_rag.baselines.context_distillation import StandardCDBaseline
from d2l_rag.baselines.d2l import D2LBaseline
from d2l_rag.baselines.in_context import InContextBaseline
from d2l_rag.baselines.no_document import NoDocumentBaseline
from d2l_rag.baselines.rag import RAGBaseline
from d2l_rag.config import GenerationConfig

__all__ = ["main", "run_benchmarks"]

RESULTS_DIR = Path(__file__).parent / "results"


def _section(results: dict[str, Any], name: str, fn: Callable[[], Any], log: Callable[[str], None]) -> None:
    start = time.perf_counter()
    log(f"[{name}]")
    try:
        results[name] = fn()
    except Exception as exc:  # one failed measurement must not lose the others; the report lists it
        results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
        log(traceback.format_exc())
    log(f"[{name}] {time.perf_counter() - start:.1f}s")


def run_benchmarks(
    profile: Profile,
    out: Path,
    checkpoint: str | Path | None = None,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every measurement of `profile`, write results.json, REPORT.md and plots to `out`; return the results."""
    wall = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    subject = load_subject(model or profile.model, checkpoint, device, dtype)
    lm = subject.lm
    log(f"model {subject.model_name} on {lm.device}, checkpoint: {subject.checkpoint_id}")
    generation = GenerationConfig(max_new_tokens=profile.max_new_tokens)
    d2l = D2LBaseline(lm, subject.hypernet, generation)
    score_d2l = subject.trained or profile.model == "tiny"
    reason = (
        "trained checkpoint"
        if subject.trained
        else "untrained hypernetwork (tiny profile: plumbing only)"
        if score_d2l
        else "no checkpoint: no trained hypernetwork fits this base model, so D2L accuracy is not measured "
        "(costs below use an untrained hypernetwork of the default architecture)"
    )
    results: dict[str, Any] = {
        "profile": {**dataclasses.asdict(profile), "cd": dataclasses.asdict(profile.cd)},
        "environment": environment(lm.device),
        "model": {
            "name": subject.model_name,
            "checkpoint": subject.checkpoint,
            "checkpoint_id": subject.checkpoint_id,
            "fingerprint": lm.fingerprint.id,
            "context_window": lm.context_window,
            "hypernet": subject.hypernet.config.hypernet.model_dump(),
        },
        "d2l": {"accuracy_scored": score_d2l, "reason": reason},
    }
    rag = RAGBaseline(lm, profile.retriever, k=profile.rag_k, generation=generation)
    results["rag_retriever"] = rag.retriever_name
    baselines = {
        "d2l": d2l if score_d2l else None,
        "in_context": InContextBaseline(lm, generation),
        "rag": rag,
        "no_document": NoDocumentBaseline(lm, generation),
    }
    cd = StandardCDBaseline(lm, profile.cd, generation)

    def accuracy() -> dict[str, Any]:
        datasets = {
            "facts": heldout_facts(lm, profile.facts_n, profile.facts_tokens),
            "real": real_text_qa(profile.real_docs, profile.real_questions_per_doc),
        }
        return run_accuracy(datasets, baselines, cd, profile.cd_docs, log)

    new_tokens = min(profile.max_new_tokens, 16)
    _section(results, "accuracy", accuracy, log)
    _section(
        results,
        "latency",
        lambda: run_latency(lm, d2l.builder, d2l.generator, profile.latency_tokens, profile.runs, new_tokens, log),
        log,
    )
    _section(results, "footprint", lambda: run_footprint(lm, subject.hypernet, profile.kv_tokens), log)
    _section(
        results,
        "throughput",
        lambda: run_throughput(
            lm, d2l.builder, d2l.generator, profile.batch, profile.latency_tokens[0], profile.runs, new_tokens
        ),
        log,
    )
    results["targets"] = evaluate_targets(results)
    results["wall_seconds"] = time.perf_counter() - wall
    plots, plot_note = render_plots(results, out)
    results["plots"], results["plot_note"] = plots, plot_note
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "REPORT.md").write_text(render_report(results, plots, plot_note))
    log(f"wrote {out / 'results.json'}, {out / 'REPORT.md'} and {len(plots)} plot(s) in {results['wall_seconds']:.0f}s")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default benchmarks/results/<profile>)"
    )
    parser.add_argument(
        "--checkpoint", default=None, help="hypernetwork checkpoint directory (default: the shipped one)"
    )
    parser.add_argument("--model", default=None, help="base model path or 'default' (overrides the profile's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    run_benchmarks(
        profile, args.out or RESULTS_DIR / profile.name, args.checkpoint, args.model, args.device, args.dtype
    )


if __name__ == "__main__":
    main()
