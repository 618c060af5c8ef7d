"""The NIAH report: facts counted by type across lengths, older JSON still renders, and a facts set is checked first."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from benchmarks.facts_set import DEFAULT_FACTS_SET
from benchmarks.niah import main, markdown


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


def test_facts_by_answer_form_sum_over_lengths_per_mode() -> None:
    data = _data()
    data["facts"]["adapter"]["256"]["by_answer"] = {"name": {"right": 0, "n": 2}, "number": {"right": 1, "n": 2}}
    data["facts"]["adapter"]["1024"]["by_answer"] = {"number": {"right": 2, "n": 4}}
    text = markdown(data)
    assert "| answer form | adapter | in_context |" in text
    assert "| name | 0/2 | n/a |" in text and "| number | 3/6 | n/a |" in text


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


def test_the_header_names_the_decoding() -> None:
    data = _data()
    assert "the 4 most salient chunks composed, greedy decoding, native window" in markdown(data)
    data["settings"]["num_beams"] = 4
    assert "the 4 most salient chunks composed, beam search of 4, native window" in markdown(data)


def test_the_facts_title_says_which_questions_were_asked() -> None:
    data = _data()
    data["settings"]["facts_set"] = {"path": "/x/benchmarks/data/facts_heldout.json", "sha256": "0123456789abcdef"}
    assert "## Held-out fictional facts (answer found), saved set `facts_heldout.json` (0123456789ab)" in markdown(data)
    data["settings"]["facts_set"] = None
    assert "## Held-out fictional facts (answer found), drawn on this machine" in markdown(data)


def test_a_facts_set_that_cannot_serve_the_run_stops_it_before_the_model_loads(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="holds heldout facts, not train"):
        main(["--facts-split", "train", "--facts-set", str(DEFAULT_FACTS_SET)])
    with pytest.raises(SystemExit, match=r"500 of \[256, 1024\]"):
        main(["--facts-n", "500"])
    with pytest.raises(SystemExit, match="no facts set at"):
        main(["--facts-set", str(tmp_path / "none.json")])


def test_bad_lengths_and_modes_stop_the_run_before_the_model_loads() -> None:
    with pytest.raises(SystemExit, match="--modes 'adapter,oracle': each must be one of"):
        main(["--modes", "adapter,oracle"])
    with pytest.raises(SystemExit, match="--lengths '1k': token counts separated by commas"):
        main(["--lengths", "1k"])
    with pytest.raises(SystemExit, match="--facts-lengths '-256': token counts must be positive"):
        main(["--facts-lengths", "-256"])
    with pytest.raises(SystemExit, match="--num-beams 0: must be 1 to 16"):
        main(["--num-beams", "0"])
    with pytest.raises(SystemExit, match="--chunk-tokens 0: must be positive"):
        main(["--chunk-tokens", "0"])


def test_a_section_not_asked_for_leaves_no_empty_table() -> None:
    data = _data()
    data["niah"] = {"adapter": {}}
    text = markdown(data)
    assert "Needle in a haystack (exact match)" not in text and "| 256 | 0.25 (n=4) |" in text
