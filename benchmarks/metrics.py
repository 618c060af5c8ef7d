"""Answer scoring: SQuAD-style normalisation, exact match (answer contained) and token F1.

Chat models answer in sentences ("The population of Oakmere is 12,400."), so strict equality with a short
reference scores almost nothing for every method alike. `exact_match` therefore asks whether the normalised
reference appears as a whole-word span of the normalised answer; `strict_match` keeps the SQuAD definition, and
`token_f1` (SQuAD's) penalises long answers. All three take the best over the accepted reference spellings.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

__all__ = ["exact_match", "normalize_answer", "strict_match", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}‘’“”–—]")


def normalize_answer(text: str) -> str:
    """Lower case, accents folded, punctuation to spaces (so "12,400" and "1.00" keep their digits), no articles."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = _PUNCT.sub(" ", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def exact_match(prediction: str, references: Sequence[str]) -> bool:
    """True when some reference, normalised, is a whole-word span of the normalised prediction."""
    padded = f" {normalize_answer(prediction)} "
    return any(ref and f" {ref} " in padded for ref in (normalize_answer(r) for r in references))


def strict_match(prediction: str, references: Sequence[str]) -> bool:
    """SQuAD exact match: the normalised prediction equals a normalised reference."""
    pred = normalize_answer(prediction)
    return any(pred == normalize_answer(r) for r in references)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """SQuAD token F1, best over the references."""
    pred = _tokens(prediction)
    best = 0.0
    for reference in references:
        ref = _tokens(reference)
        common = sum((Counter(pred) & Counter(ref)).values())
        if not pred or not ref or not common:
            continue
        precision, recall = common / len(pred), common / len(ref)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best
