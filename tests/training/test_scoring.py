from __future__ import annotations

import pytest

from d2l_rag.training.scoring import ANSWER_FORMS, answer_form, answer_is_right


@pytest.mark.parametrize(
    ("kind", "answer", "expected", "right"),
    [
        ("needle", "The special magic number is 4821.", "4821", True),
        ("needle", "It is 1234, not 4821.", "4821", False),  # the first 4-digit number counts
        ("needle", "It is 14821.", "4821", False),  # a longer number is not the needle
        ("needle", "The number is 4,821.", "4821", True),
        ("facts", "Mira Oden was born in Velport.", "Velport", True),
        ("facts", "She was born in Velportia.", "Velport", False),  # whole words only
        ("facts", "The code is kx-4821-q.", "KX-4821-Q", True),
        ("negative", "There is no magic number.", "", None),
        ("prose", "Anything the teacher said.", "", None),
    ],
)
def test_answer_is_right_by_kind(kind, answer, expected, right):
    assert answer_is_right(kind, answer, expected) is right


@pytest.mark.parametrize(
    ("reference", "form"),
    [
        ("1934", "number"),
        ("292,096", "number"),
        ("7 September 1801", "date"),
        ("C99109", "code"),
        ("GN-4905-K", "code"),
        ("Kraecraa Drorwright", "name"),
        ("Zolhaven", "name"),
    ],
)
def test_answer_form_says_what_the_reference_asks_to_spell(reference: str, form: str) -> None:
    assert answer_form(reference) == form


def test_every_saved_facts_answer_has_one_of_the_forms() -> None:
    from benchmarks.facts_set import DEFAULT_FACTS_SET, load_facts_set

    forms = {answer_form(ex.answer) for examples in load_facts_set(DEFAULT_FACTS_SET).values() for ex in examples}
    assert forms == set(ANSWER_FORMS)
