"""benchmarks.internalize_cost: a row per length with both precisions timed against the same forward."""

from __future__ import annotations

import math

import pytest

from benchmarks.internalize_cost import PRECISIONS, main, measure


def test_each_length_gets_a_forward_and_each_precisions_ratio_to_it(tiny_lm, tiny_hypernet):
    rows = measure(tiny_lm, tiny_hypernet, [200, 400], runs=1)
    assert len(rows) == 2 and rows[0]["tokens"] < rows[1]["tokens"]
    for row in rows:
        assert row["chunks"] == math.ceil(row["tokens"] / 64)  # the tiny hypernetwork reads 64-token chunks
        assert row["forward_s"] > 0
        for precision in PRECISIONS:
            cost = row[precision]
            assert cost["over_forward"] == pytest.approx(cost["internalize_s"] / row["forward_s"])


def test_a_document_longer_than_the_window_is_refused(tiny_lm, tiny_hypernet):
    with pytest.raises(ValueError, match="does not fit the"):
        measure(tiny_lm, tiny_hypernet, [tiny_lm.context_window + 200], runs=1)


@pytest.mark.parametrize("argv", [["--runs", "0"], ["--lengths", ""]])
def test_bad_arguments_stop_before_the_model_loads(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert "--runs must be >= 1 and --lengths must name at least one length" in capsys.readouterr().err
