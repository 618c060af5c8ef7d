"""benchmarks.train_step end to end on the tiny random model: every variant times the same steps, and the report."""

from __future__ import annotations

import json

import pytest

import benchmarks.train_step as train_step
from d2l_rag.testing import tiny_llama


def test_every_variant_runs_the_same_batches_and_the_report_reads_them(tmp_path, monkeypatch) -> None:
    config = {
        "pool_size": 16,
        "teacher_batch": 8,
        "answer_tokens": 4,
        "max_doc_tokens": 120,
        "batch_size": 4,
        "hypernet": {"rank": 4, "width": 32, "num_heads": 4, "num_blocks": 1, "chunk_tokens": 64},
        "mix": {"needle": 1, "negative": 1, "facts": 1, "prose": 0},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    monkeypatch.setattr(train_step, "load_base_model", lambda model, dtype: tiny_llama(seed=3))
    data = train_step.run(path, None, None, pool_size=16, steps=3, top_k=5, buckets=3)
    assert data["settings"]["pool_kept"] > 0 and data["settings"]["top_k"] == 5
    exact, held, bucketed = data["variants"]
    assert all(v["step_s"] > 0 and v["peak_gb"] >= 0 for v in data["variants"]) and exact["speedup"] == 1
    assert held["loss"] <= exact["loss"] + 1e-6  # the binned KL never exceeds the full one
    assert bucketed["loss"] == pytest.approx(held["loss"], rel=1e-4)  # length buckets: the same LoRAs, the same loss
    assert -1 < data["binned_minus_full_relative"]["mean"] <= 1e-6
    assert 0 <= data["teacher_tail_mass"]["mean"] <= data["teacher_tail_mass"]["max"] <= 1
    report = train_step.markdown(data)
    assert "3 length buckets" in report and f"{held['speedup']:.2f}x" in report and "k = 5" in report
