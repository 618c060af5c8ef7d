"""QA accuracy of every method on the same items, and what each paid to prepare a document.

Standard CD trains on the first `cd_docs` documents of each dataset only (it is the slow one); every method is
also scored on that subset so the CD comparison is like for like. CD's adapter is kept after several step counts,
which gives its accuracy as a function of update time, to compare with D2L's one-pass update.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.datasets import QAItem
from benchmarks.metrics import exact_match, strict_match, token_f1
from d2l_rag.baselines.base import Baseline, BaselineAnswer
from d2l_rag.baselines.context_distillation import StandardCDBaseline
from d2l_rag.generation import Answer

__all__ = ["cd_subset", "run_accuracy", "summarize"]

GROUNDED_NOTE = "spelling grounded:"  # how D2LBaseline notes each correction of an answer


def _score(item: QAItem, text: str) -> dict[str, Any]:
    return {
        "em": exact_match(text, item.answers),
        "strict": strict_match(text, item.answers),
        "f1": token_f1(text, item.answers),
    }


def cd_subset(items: Sequence[QAItem], cd_docs: int) -> set[str]:
    """Ids of the items whose document is among the first `cd_docs` documents (in item order)."""
    docs = list(dict.fromkeys(i.doc_id for i in items))[:cd_docs]
    return {i.item_id for i in items if i.doc_id in docs}


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"n": 0}
    prepare = [r["prepare_s"] for r in rows if r.get("prepare_s")]
    per_answer = ("adapter rank", GROUNDED_NOTE)  # notes every D2L answer may carry: counted, not listed
    notes = sorted({n for r in rows for n in r["notes"] if not n.startswith(per_answer)})[:5]
    grounded = sum(any(n.startswith(GROUNDED_NOTE) for n in r["notes"]) for r in rows)
    if grounded:
        notes.append(f"{grounded} of {len(rows)} answers took the document's spelling (grounded)")
    return {
        "n": len(rows),
        "em": sum(r["em"] for r in rows) / len(rows),
        "strict_em": sum(r["strict"] for r in rows) / len(rows),
        "f1": sum(r["f1"] for r in rows) / len(rows),
        "answer_s_median": statistics.median(r["seconds"] for r in rows),
        "prompt_tokens_median": statistics.median(r["prompt_tokens"] for r in rows),
        "update_s_median": statistics.median(prepare) if prepare else 0.0,
        "notes": notes,
    }


def _row(
    item: QAItem, out: Answer | BaselineAnswer, prepare_s: float, notes: list[str], **extra: Any
) -> dict[str, Any]:
    """One scored answer as saved in results.json."""
    return {
        "item": item.item_id,
        "doc": item.doc_id,
        "answer": out.text,
        "seconds": out.seconds,
        "prompt_tokens": out.prompt_tokens,
        "prepare_s": prepare_s,
        "notes": notes,
        **extra,
        **_score(item, out.text),
    }


def _run_baseline(baseline: Baseline, items: Sequence[QAItem]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        out = baseline.answer(item.question, item.document)
        rows.append(_row(item, out, out.prepare_seconds, list(out.notes)))
    return rows


def _run_cd(cd: StandardCDBaseline, items: Sequence[QAItem]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows of the final adapter, the time-to-accuracy curve over the snapshots)."""
    by_doc: dict[str, list[QAItem]] = {}
    for item in items:
        by_doc.setdefault(item.doc_id, []).append(item)
    rows, per_step = [], {}
    for doc_items in by_doc.values():
        distilled = cd.distill(doc_items[0].document)
        snaps = {s.step: s for s in distilled.snapshots}
        for step, snap in snaps.items():
            for item in doc_items:
                text = cd.generator.answer(item.question, adapter=snap.adapter).text
                per_step.setdefault(step, {"scores": [], "seconds": []})["scores"].append(_score(item, text))
            per_step[step]["seconds"].append(snap.seconds)
        notes = list(cd.notes(distilled))
        for i, item in enumerate(doc_items):
            out = cd.generator.answer(item.question, adapter=distilled.adapter)
            rows.append(
                _row(
                    item,
                    out,
                    distilled.seconds if i == 0 else 0.0,
                    notes,
                    final_loss=distilled.losses[-1] if distilled.losses else None,
                    first_loss=distilled.losses[0] if distilled.losses else None,
                )
            )
    curve = [
        {
            "step": step,
            "update_s_median": statistics.median(v["seconds"]),
            "em": sum(s["em"] for s in v["scores"]) / len(v["scores"]),
            "f1": sum(s["f1"] for s in v["scores"]) / len(v["scores"]),
            "n": len(v["scores"]),
        }
        for step, v in sorted(per_step.items())
    ]
    return rows, curve


def run_accuracy(
    datasets: dict[str, list[QAItem]],
    baselines: dict[str, Baseline | None],
    cd: StandardCDBaseline | None,
    cd_docs: int,
    log=print,
) -> dict[str, Any]:
    """Per dataset: summary per method (all items and CD subset), CD's curve, and every answer.

    A baseline given as None (D2L without a checkpoint) is reported as not run.
    """
    results: dict[str, Any] = {}
    for name, items in datasets.items():
        subset = cd_subset(items, cd_docs)
        rows: dict[str, list[dict[str, Any]]] = {}
        for method, baseline in baselines.items():
            if baseline is None:
                continue
            log(f"  accuracy/{name}: {method} on {len(items)} questions")
            rows[method] = _run_baseline(baseline, items)
        curve: list[dict[str, Any]] = []
        if cd is not None and subset:
            log(f"  accuracy/{name}: standard_cd on {len(subset)} questions ({cd_docs} documents)")
            rows["standard_cd"], curve = _run_cd(cd, [i for i in items if i.item_id in subset])
        results[name] = {
            "n_items": len(items),
            "n_documents": len({i.doc_id for i in items}),
            "methods": {m: summarize(r) for m, r in rows.items()},
            "cd_subset": {m: summarize([x for x in r if x["item"] in subset]) for m, r in rows.items()},
            "cd_curve": curve,
            "answers": rows,
            "questions": {i.item_id: {"question": i.question, "answers": list(i.answers)} for i in items},
        }
    return results
