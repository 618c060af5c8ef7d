"""benchmarks.attention_backends on CPU at toy sizes: both variants time the same lengths, and the report."""

from __future__ import annotations

import benchmarks.attention_backends as attention_backends


def test_both_variants_time_the_same_lengths_and_the_report_reads_them() -> None:
    data = attention_backends.run(steps=2, batch=2, layers=2, min_len=8, max_len=40)
    default, without_cudnn = data["variants"]
    assert default["speedup"] == 1 and without_cudnn["step_s"] > 0
    assert data["settings"]["lengths"] == [8, 40] and data["machine"]["device"] == "cpu"
    report = attention_backends.markdown(data)
    assert "batch 2, 9 heads of 64, 2 layers" in report and f"{without_cudnn['speedup']:.2f}x" in report
