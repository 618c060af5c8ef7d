"""benchmarks.copy_probe: its four settings, its report, and the errors it gives before loading a model."""

from __future__ import annotations

import pytest

from benchmarks.copy_probe import SETTINGS, main, markdown, probe_examples
from d2l_rag.training.facts import name_split
from d2l_rag.training.needle import FILLER, WORD_QUESTION
from d2l_rag.training.scoring import answer_form


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("setting", SETTINGS)
def test_each_setting_asks_held_out_names_and_codes_in_its_text(setting):
    examples = probe_examples(words, setting, 10, 200)
    assert examples == probe_examples(words, setting, 10, 200) and len(examples) == 10
    for ex in examples:
        assert answer_form(ex.answer) in ("name", "code") and ex.answer in ex.document
        assert {name_split(part) for part in ex.answer.split(" ")} == {"heldout"}
        assert (FILLER in ex.document) == setting.endswith("filler")
        assert (ex.question == WORD_QUESTION) == setting.startswith("word")


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="setting must be one of"):
        probe_examples(words, "word_poem", 1, 100)


def test_markdown_has_a_row_per_checkpoint_and_mode():
    cell = {"right": 3, "n": 10, "per_example": [], "sample_answer": ""}
    data = {
        "length": 256,
        "n": 10,
        "model": "m",
        "checkpoints": {
            "a": {s: {"adapter": cell, "in_context": cell} for s in SETTINGS},
            "b": {s: {"adapter": cell} for s in SETTINGS},
        },
    }
    rows = [line for line in markdown(data).splitlines() if line.startswith("| `")]
    assert rows == [
        "| `a` | adapter | 3/10 | 3/10 | 3/10 | 3/10 |",
        "| `a` | in_context | 3/10 | 3/10 | 3/10 | 3/10 |",
        "| `b` | adapter | 3/10 | 3/10 | 3/10 | 3/10 |",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint", "/nonexistent/ckpt"], "no checkpoint"),
        (["--checkpoint", ".", "--modes", "in_context"], "adapter, optionally with in_context"),
        (["--checkpoint", ".", "--n", "0"], "must be positive"),
    ],
)
def test_bad_arguments_stop_before_the_model_loads(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)
