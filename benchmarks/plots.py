"""PNG plots of a results dict (matplotlib, Agg backend); skipped with a note when matplotlib is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from benchmarks.report import METHOD_LABELS

__all__ = ["render_plots"]


def render_plots(results: dict[str, Any], out: Path) -> tuple[list[str], str | None]:
    """(file names written, None) or ([], why none were)."""
    if importlib.util.find_spec("matplotlib") is None:
        return [], "plots skipped: matplotlib is not installed (pip install 'd2l-rag[bench]')"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    acc = results.get("accuracy") or {}
    if acc:
        fig, axes = plt.subplots(1, len(acc), figsize=(5.5 * len(acc), 4), squeeze=False)
        for ax, (dataset, data) in zip(axes[0], acc.items(), strict=True):
            methods = list(data["methods"])
            ax.bar(range(len(methods)), [data["methods"][m].get("em", 0) for m in methods], color="tab:blue")
            ax.set_xticks(
                range(len(methods)), [METHOD_LABELS.get(m, m).split(" (")[0] for m in methods], rotation=25, ha="right"
            )
            ax.set_ylim(0, 1)
            ax.set_ylabel("exact match")
            ax.set_title(f"{dataset}: {data['n_items']} questions")
        save(fig, "accuracy.png")

    latency = results.get("latency") or []
    if latency:
        tokens = [r["document_tokens"] for r in latency]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        ax1.plot(tokens, [r["in_context_question_s"] for r in latency], "o-", label="in-context, per question")
        ax1.plot(tokens, [r["d2l_question_s"] for r in latency], "o-", label="D2L, per question")
        ax1.plot(tokens, [r["internalize_s"] for r in latency], "s--", label="D2L internalize (once)")
        ax1.plot(tokens, [r["forward_s"] or float("nan") for r in latency], "^:", label="one plain forward")
        ax1.set_xlabel("document tokens")
        ax1.set_ylabel("seconds (median)")
        ax1.set_yscale("log")
        ax1.legend(fontsize=8)
        ax2.plot(tokens, [(r["in_context_peak_bytes"] or 0) / 2**20 for r in latency], "o-", label="in-context")
        ax2.plot(tokens, [(r["d2l_peak_bytes"] or 0) / 2**20 for r in latency], "o-", label="D2L")
        ax2.set_xlabel("document tokens")
        ax2.set_ylabel("peak extra memory per question (MiB)")
        ax2.legend(fontsize=8)
        save(fig, "latency_memory.png")

    footprint = results.get("footprint") or []
    if footprint:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        tokens = [r["tokens"] for r in footprint]
        ax.plot(tokens, [r["kv_cache_bytes"] / 2**20 for r in footprint], "o-", label="KV cache")
        ax.plot(tokens, [r["adapter_bytes"] / 2**20 for r in footprint], "o-", label="D2L adapter")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("document tokens")
        ax.set_ylabel("MiB (bf16)")
        ax.legend()
        save(fig, "adapter_vs_kv.png")

    curves = {d: a for d, a in acc.items() if a.get("cd_curve")}
    if curves:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for dataset, data in curves.items():
            curve = data["cd_curve"]
            ax.plot(
                [max(p["update_s_median"], 1e-3) for p in curve],
                [p["em"] for p in curve],
                "o-",
                label=f"standard CD ({dataset})",
            )
            d2l = data["cd_subset"].get("d2l")
            if d2l and d2l.get("n"):
                ax.scatter(
                    [max(d2l["update_s_median"], 1e-3)], [d2l["em"]], marker="*", s=160, label=f"D2L ({dataset})"
                )
        ax.set_xscale("log")
        ax.set_xlabel("update time per document (s)")
        ax.set_ylabel("exact match (CD subset)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        save(fig, "cd_time_to_accuracy.png")

    tp = results.get("throughput")
    if tp:
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        ax.bar(
            [f"{tp['batch']} documents", "1 document"],
            [tp["mixed_questions_per_s"], tp["single_questions_per_s"]],
            color=["tab:orange", "tab:gray"],
        )
        ax.set_ylabel("questions / s")
        ax.set_title(f"batch of {tp['batch']}: mixed vs single adapter")
        save(fig, "throughput.png")
    return written, None
