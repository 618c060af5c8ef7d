"""The NIAH report's markdown: facts counted by type across lengths, and older JSON without counts still renders."""

from __future__ import annotations

import copy

from benchmarks.niah import markdown


def _data() -> dict:
    def result(accuracy: float, by_type: dict[str, dict[str, int]]) -> dict:
        return {"accuracy": accuracy, "n": 4, "by_depth": {"0": accuracy}, "sample_answer": "", "by_type": by_type}

    return {
        "model": "m.gguf",
        "checkpoint": {"id": "abc", "training_step": 7},
        "settings": {"chunk_tokens": 1024, "max_composed_chunks": 4, "context_window": 8192},
        "machine": {"gpu": None, "device": "cpu"},
        "seconds": 1.0,
        "niah": {"adapter": {"1024": {"accuracy": 1.0, "n": 2, "by_depth": {"0": 1.0}, "sample_answer": ""}}},
        "facts": {
            "adapter": {
                "256": result(0.25, {"capital": {"right": 0, "n": 2}, "river": {"right": 1, "n": 2}}),
                "1024": result(0.5, {"river": {"right": 2, "n": 4}}),
            },
            "in_context": {"256": result(0.75, {"capital": {"right": 2, "n": 2}, "river": {"right": 1, "n": 2}})},
        },
    }


def test_facts_by_type_sums_over_lengths_per_mode() -> None:
    text = markdown(_data())
    assert "| fact type | adapter | in_context |" in text
    assert "| capital | 0/2 | 2/2 |" in text
    assert "| river | 3/6 | 1/2 |" in text


def test_results_without_type_counts_render_without_that_table() -> None:
    data = copy.deepcopy(_data())
    for table in data["facts"].values():
        for result in table.values():
            del result["by_type"]
    text = markdown(data)
    assert "fact type" not in text and "| 256 | 0.25 (n=4) | 0.75 (n=4) |" in text


def test_a_training_split_run_is_titled_as_such() -> None:
    data = _data()
    assert "## Held-out fictional facts" in markdown(data)
    data["settings"]["facts_split"] = "train"
    text = markdown(data)
    assert "## Fictional facts, train split" in text and "Held-out fictional facts" not in text


def test_the_header_names_the_dtype_when_the_run_recorded_it() -> None:
    data = _data()
    assert "; cpu, 1 s." in markdown(data)
    data["machine"]["dtype"] = "bfloat16"
    assert "; cpu, bfloat16, 1 s." in markdown(data)
