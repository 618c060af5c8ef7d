"""The benchmark harness end to end on the tiny profile, plus its scoring, footprint and README rendering."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from benchmarks.datasets import real_text_qa
from benchmarks.footprint import adapter_bytes, kv_cache_bytes
from benchmarks.metrics import exact_match, normalize_answer, strict_match, token_f1
from benchmarks.profiles import PROFILES
from benchmarks.readme_table import (
    END,
    START,
    latest_by_profile,
    latest_results,
    render_table,
    render_targets,
    update_readme,
)
from benchmarks.targets import evaluate_targets

METHODS = {"d2l", "in_context", "rag", "no_document", "standard_cd"}
TARGETS = {
    "accuracy vs in-context",
    "accuracy vs RAG top-3",
    "accuracy vs standard CD at equal update time",
    "update speed vs standard CD",
    "internalize cost",
    "per-question latency at 8k tokens",
    "adapter vs KV cache at 64k",
    "mixed-document batch",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from benchmarks.run import run_benchmarks

    out = tmp_path_factory.mktemp("bench") / "tiny"
    results = run_benchmarks(PROFILES["tiny"], out, log=lambda _: None)
    return out, results


@pytest.mark.slow
def test_tiny_profile_writes_a_well_formed_report(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    saved = json.loads((out / "results.json").read_text())
    assert saved["profile"]["name"] == "tiny" and "errors" not in saved, saved.get("errors")
    for key in ("environment", "model", "accuracy", "latency", "footprint", "throughput", "targets", "wall_seconds"):
        assert key in saved, key
    env = saved["environment"]
    assert env["device"] == "cpu" and env["versions"]["torch"] and env["versions"]["transformers"]
    assert saved["model"]["checkpoint_id"].startswith("none")

    for dataset in ("facts", "real"):
        acc = saved["accuracy"][dataset]
        assert set(acc["methods"]) == METHODS and all(s["n"] > 0 for s in acc["methods"].values())
        assert all(0.0 <= s["em"] <= 1.0 and 0.0 <= s["f1"] <= 1.0 for s in acc["methods"].values())
        assert [p["step"] for p in acc["cd_curve"]] == [0, 2, 4]
        assert acc["cd_curve"][0]["update_s_median"] <= acc["cd_curve"][-1]["update_s_median"]
    assert saved["accuracy"]["real"]["n_items"] == 3 and saved["accuracy"]["facts"]["n_items"] == 3

    latency = saved["latency"]
    assert [r["target_tokens"] for r in latency] == [128, 256, 512]
    for row in latency:
        assert row["forward_s"] > 0 and row["internalize_s"] > 0 and row["d2l_question_s"] > 0
        assert row["latency_ratio"] == pytest.approx(row["in_context_question_s"] / row["d2l_question_s"])
        assert row["d2l_prompt_tokens"] < row["in_context_prompt_tokens"]
    assert [r["tokens"] for r in saved["footprint"]] == [8192, 32768, 65536]
    assert saved["throughput"]["batch"] == 4 and saved["throughput"]["mixed_over_single"] > 0

    assert {t["target"] for t in saved["targets"]} == TARGETS
    assert all(t["status"] in {"met", "missed", "inconclusive", "not evaluated"} for t in saved["targets"])

    report = (out / "REPORT.md").read_text()
    for heading in (
        "## Targets",
        "## QA accuracy",
        "## Internalize cost",
        "## Per-question latency",
        "## Adapter bytes vs KV-cache bytes",
        "## Batching",
        "## Plots",
    ):
        assert heading in report, heading
    tables = re.findall(r"^\|.*\|\n\|(?:---\|)+$", report, flags=re.M)  # header row + separator
    assert len(tables) >= 10
    for line in report.splitlines():
        if line.startswith("|"):
            assert line.endswith("|")
    for name in saved["plots"]:
        assert f"]({name})" in report
    if importlib.util.find_spec("matplotlib") is not None:
        assert len(saved["plots"]) == 5
        for name in saved["plots"]:
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_readme_table_is_rendered_from_results(tiny_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = tiny_run
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{START}\nstale numbers\n{END}\n\nrest\n")
    table = render_table(json.loads((out / "results.json").read_text()), "benchmarks/results/tiny/REPORT.md")
    update_readme(readme, table)
    text = readme.read_text()
    assert "stale numbers" not in text and text.startswith("# Title") and text.endswith("rest\n")
    assert "| D2L (adapter, no document) |" in text and "| RAG top-3 |" in text
    assert text.count(START) == 1 and text.count(END) == 1
    update_readme(readme, table)  # idempotent
    assert readme.read_text() == text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="bench-table"):
        update_readme(readme, table)


def test_readme_adds_the_targets_of_the_newest_report_of_each_other_profile(tmp_path: Path) -> None:
    def results(profile: str, stamp: str, measured: str) -> dict:
        target = {"goal": "adapter <= 1/20 of the KV cache", "status": "met", "measured": measured}
        env = {"timestamp": stamp, "gpu": None, "cpu_count": 2}
        model = {"checkpoint_id": f"ckpt-{stamp}"}
        return {"profile": {"name": profile}, "environment": env, "model": model, "targets": [target]}

    runs = {
        "cpu_old": ("cpu", "2026-01-01", "1/10"),
        "cpu": ("cpu", "2026-02-01", "1/23"),
        "gpu": ("gpu", "2026-03-01", "1/30"),
    }
    for folder, args in runs.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "results.json").write_text(json.dumps(results(*args)))
    newest = latest_by_profile(tmp_path)
    assert newest == {"cpu": tmp_path / "cpu" / "results.json", "gpu": tmp_path / "gpu" / "results.json"}
    assert latest_results(tmp_path) == tmp_path / "gpu" / "results.json"
    text = render_targets(json.loads(newest["cpu"].read_text()), "benchmarks/results/cpu/REPORT.md")
    assert text.startswith("Targets in the latest `cpu` report, on CPU (2 cores), 2026-02-01")
    assert "| adapter <= 1/20 of the KV cache | met | 1/23 |" in text and "1/10" not in text
    assert "not the one above" in text  # no checkpoint named: this report's own cannot be assumed to be it
    checkpoint = json.loads(newest["cpu"].read_text())["model"]["checkpoint_id"]
    same = render_targets(json.loads(newest["cpu"].read_text()), "REPORT.md", checkpoint)
    assert "not the one above" not in same and same.startswith("Targets in the latest `cpu` report, on CPU (2 cores)")


def test_plots_are_skipped_with_a_note_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmarks import plots

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a))
    written, note = plots.render_plots({"accuracy": {}}, tmp_path)
    assert written == [] and "matplotlib" in note


def test_scoring() -> None:
    assert normalize_answer("The  Café, Ltd.") == "cafe ltd"
    assert exact_match("The population of Oakmere is 12,400.", ["12,400"])
    assert not exact_match("It is 112,400.", ["12,400"])  # whole words only
    assert exact_match("Guido van Rossum created it", ["Guido van Rossum"])
    assert strict_match("Beautiful.", ["beautiful"]) and not strict_match("Beautiful is better.", ["Beautiful"])
    assert token_f1("Tim Peters", ["Tim Peters"]) == 1.0
    assert token_f1("It was written by Tim Peters", ["Tim Peters"]) == pytest.approx(0.5)  # precision 2/6, recall 1
    assert token_f1("nothing", ["Tim Peters"]) == 0.0


def test_real_text_qa_set_is_well_formed() -> None:
    items = real_text_qa()
    assert 30 <= len(items) <= 45 and len({i.doc_id for i in items}) >= 6
    assert len({i.item_id for i in items}) == len(items)
    for item in items:
        assert item.question.endswith("?") and item.answers
        assert any(normalize_answer(a) in normalize_answer(item.document) for a in item.answers), item.item_id
    assert len(real_text_qa(max_docs=2, per_doc=1)) == 2


def test_footprint_formulas_match_real_tensors(tiny_lm, tiny_hypernet) -> None:
    from d2l_rag.adapters import AdapterBuilder

    tokens = 100
    with torch.no_grad():
        cache = tiny_lm.model(torch.zeros(1, tokens, dtype=torch.long), use_cache=True).past_key_values
    layers = cache.layers if hasattr(cache, "layers") else cache
    real_kv = sum(t.numel() * t.element_size() for layer in layers for t in (layer.keys, layer.values))
    assert kv_cache_bytes(tiny_lm, tokens, bytes_per_value=4) == real_kv

    builder = AdapterBuilder(tiny_lm, tiny_hypernet)
    adapter = builder.encode_text("word " * 150)  # chunks of 64 tokens, no bias LoRA
    assert adapter_bytes(tiny_lm, tiny_hypernet, adapter.token_count, bytes_per_value=4) == adapter.nbytes


def test_targets_are_judged_from_the_numbers() -> None:
    def summary(em: float, update: float = 0.0) -> dict:
        return {"n": 10, "em": em, "f1": em, "update_s_median": update}

    accuracy = {
        "facts": {
            "methods": {
                "d2l": summary(0.8, 0.1),
                "in_context": summary(0.85),
                "rag": summary(0.6),
                "no_document": summary(0.0),
            },
            "cd_subset": {"d2l": summary(0.8, 0.1), "no_document": summary(0.0), "standard_cd": summary(0.9, 40.0)},
            "cd_curve": [
                {"step": 0, "em": 0.0, "update_s_median": 5.0},
                {"step": 10, "em": 0.5, "update_s_median": 9.0},
                {"step": 50, "em": 0.9, "update_s_median": 40.0},
            ],
        }
    }
    results = {
        "d2l": {"accuracy_scored": True, "reason": ""},
        "accuracy": accuracy,
        "environment": {"device": "cpu"},
        "latency": [
            {
                "document_tokens": 8000,
                "internalize_over_forward": 1.2,
                "latency_ratio": 12.0,
                "in_context_question_s": 6.0,
                "d2l_question_s": 0.5,
            }
        ],
        "footprint": [
            {"tokens": 65536, "adapter_over_kv": 1 / 23, "adapter_bytes": 1, "kv_cache_bytes": 23, "fits_window": False}
        ],
        "throughput": {"mixed_over_single": 0.7, "mixed_questions_per_s": 7, "single_questions_per_s": 10, "batch": 8},
    }
    status = {t["target"]: t["status"] for t in evaluate_targets(results)}
    assert status == {
        "accuracy vs in-context": "met",  # 0.8 / 0.85 = 0.94
        "accuracy vs RAG top-3": "met",
        "accuracy vs standard CD at equal update time": "met",  # no CD step fits in 0.1 s: CD = no document
        "update speed vs standard CD": "met",  # CD needs 40 s to reach 0.8: 400x
        "internalize cost": "met",
        "per-question latency at 8k tokens": "met",
        "adapter vs KV cache at 64k": "met",
        "mixed-document batch": "missed",
    }
    results["d2l"] = {"accuracy_scored": False, "reason": "no checkpoint"}
    status = {t["target"]: t["status"] for t in evaluate_targets(results)}
    assert status["accuracy vs in-context"] == "not evaluated" and status["update speed vs standard CD"] == (
        "not evaluated"
    )


def test_grounded_spellings_are_counted_not_listed_among_a_methods_notes() -> None:
    from benchmarks.accuracy import summarize

    def row(*notes: str) -> dict:
        return {"em": 1.0, "strict": 1.0, "f1": 1.0, "seconds": 0.1, "prompt_tokens": 9, "prepare_s": 0.0,
                "notes": ["adapter rank 8 from 1 chunk(s), 100 bytes", *notes]}  # fmt: skip

    summary = summarize([row("spelling grounded: Quandrixal -> Quandrixel"), row(), row("truncated to window")])
    assert summary["notes"] == ["truncated to window", "1 of 3 answers took the document's spelling (grounded)"]
