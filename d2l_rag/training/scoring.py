"""Is an answer right? One rule per data kind, shared by the held-out evals and the teacher-pool filter."""

from __future__ import annotations

import re

__all__ = ["ANSWER_FORMS", "answer_contains", "answer_form", "answer_is_right", "magic_number_correct"]

ANSWER_FORMS = ("number", "date", "code", "name")


def magic_number_correct(answer: str, expected: str) -> bool:
    """Exact match: the first 4-digit number in the answer is the needle's."""
    found = re.findall(r"(?<!\d)\d{4}(?!\d)", answer.replace(",", ""))
    return bool(found) and found[0] == expected


def answer_contains(answer: str, expected: str) -> bool:
    """The reference answer (a name, date, number or code) appears in the answer, case and spacing ignored."""

    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^\w]+", " ", s.lower()).split())

    return bool(expected) and f" {norm(expected)} " in f" {norm(answer)} "


def answer_is_right(kind: str, answer: str, expected: str) -> bool | None:
    """Whether `answer` holds the reference of an example of `kind`; None where there is no reference to check
    (negatives and prose questions: the teacher's answer is the target)."""
    if not expected:
        return None
    return magic_number_correct(answer, expected) if kind == "needle" else answer_contains(answer, expected)


def answer_form(reference: str) -> str:
    """What a reference asks the model to spell: a "number" (digits, thousands commas), a "date" (7 September
    1801), a "code" (letters and digits) or a "name". A fact's type does not say it: founders and inventors are
    asked as a year or as a person."""
    if re.fullmatch(r"\d[\d,]*", reference):
        return "number"
    if re.fullmatch(r"\d{1,2} [A-Z][a-z]+ \d{3,4}", reference):
        return "date"
    return "code" if re.search(r"\d", reference) else "name"
