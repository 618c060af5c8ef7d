"""Benchmark sizes: `tiny` for CI (random tiny Llama, seconds), `cpu` and `gpu` for the published reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from d2l_rag.baselines.context_distillation import CDConfig

__all__ = ["PROFILES", "Profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    model: str  # "tiny": in-memory random Llama (plumbing only); "default": the embedded SmolLM2; else a path
    facts_n: int  # held-out fictional-facts questions (one document each)
    facts_tokens: tuple[int, ...]  # document lengths, cycled
    real_docs: int | None  # real-text documents used (None = all)
    real_questions_per_doc: int | None  # questions per real document (None = all)
    cd: CDConfig  # standard context distillation budget; snapshots give the time-to-accuracy curve
    cd_docs: int  # CD trains on the first `cd_docs` documents of each dataset (it is by far the slowest baseline)
    latency_tokens: tuple[int, ...]  # document lengths for per-question latency, memory and internalize cost
    runs: int  # timed repetitions (medians reported)
    max_new_tokens: int
    rag_k: int = 3
    retriever: str = "auto"  # MiniLM when installed, else BM25
    batch: int = 8  # rows in the ask_batch throughput comparison
    kv_tokens: tuple[int, ...] = (8192, 32768, 65536)
    notes: tuple[str, ...] = field(default=())


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        model="tiny",
        facts_n=3,
        facts_tokens=(160,),
        real_docs=1,
        real_questions_per_doc=3,
        cd=CDConfig(steps=4, snapshots=(0, 2, 4), max_questions=2, question_tokens=8, answer_tokens=8),
        cd_docs=1,
        latency_tokens=(128, 256, 512),
        runs=2,
        max_new_tokens=8,
        retriever="bm25",
        batch=4,
        notes=("tiny: a random 2-layer Llama and an untrained hypernetwork; checks the harness, not the method",),
    ),
    "cpu": Profile(
        name="cpu",
        model="default",
        facts_n=12,
        facts_tokens=(256, 512),
        real_docs=None,
        real_questions_per_doc=None,
        cd=CDConfig(steps=30, snapshots=(0, 10, 20, 30), max_questions=8),
        cd_docs=3,
        latency_tokens=(1000, 4000, 8000),
        runs=3,
        max_new_tokens=48,
    ),
    "gpu": Profile(
        name="gpu",
        model="default",
        facts_n=40,
        facts_tokens=(256, 512, 1024, 2048),
        real_docs=None,
        real_questions_per_doc=None,
        cd=CDConfig(steps=100, snapshots=(0, 10, 25, 50, 100), max_questions=16),
        cd_docs=6,
        latency_tokens=(1000, 4000, 8000),
        runs=5,
        max_new_tokens=48,
    ),
}
