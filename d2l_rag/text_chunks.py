"""Split text into overlapping passages of at most `max_chars` characters, at the most natural boundary.

This is the standard recursive character splitter (LangChain's `RecursiveCharacterTextSplitter`): cut on blank
lines first, then on line breaks, then after sentences, then on spaces, and only as a last resort inside a word;
then pack the pieces greedily into passages. The RAG baseline indexes these passages, and the in-context fallback
uses them to keep the parts of an over-long document that look most like the question.

Passages are slices of the original text (stripped of surrounding whitespace), so a passage can always be found
again in the document; characters are used instead of tokens so the splitter needs no tokenizer.
"""

from __future__ import annotations

import itertools
import re

from d2l_rag.errors import InvalidInputError

__all__ = ["split_passages"]

# Coarsest first. Each pattern matches the separator that follows a piece; the separator stays with that piece,
# so the pieces of a span always concatenate back to the span.
_SEPARATORS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\n[ \t\r\f\v]*\n\s*"),  # paragraphs
    re.compile(r"\n\s*"),  # lines
    re.compile(r"(?<=[.!?;:])[\"')\]]*\s+"),  # sentences (and clauses ending in ; or :)
    re.compile(r"\s+"),  # words
)


def split_passages(text: str, max_chars: int = 1200, overlap_chars: int = 150) -> list[str]:
    """Passages of `text`, in document order, each at most `max_chars` long.

    Consecutive passages share up to `overlap_chars` characters of whole pieces (paragraphs, lines, sentences or
    words, whichever level the split reached), so a fact cut at a boundary is still whole in one of them. Together
    the passages cover every non-whitespace character of `text`. Empty or blank text gives no passages.
    """
    if max_chars < 1:
        raise InvalidInputError(f"max_chars must be >= 1, got {max_chars}")
    if not 0 <= overlap_chars < max_chars:
        raise InvalidInputError(f"overlap_chars must be in [0, max_chars={max_chars}), got {overlap_chars}")
    passages = (text[start:end].strip() for start, end in _passage_spans(text, max_chars, overlap_chars))
    return [passage for passage in passages if passage]


def _passage_spans(text: str, max_chars: int, overlap_chars: int) -> list[tuple[int, int]]:
    """(start, end) offsets of the passages: greedy packing of the atomic pieces, with a tail of overlap."""
    atoms = _atoms(text, 0, len(text), 0, max_chars)
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(atoms):
        start = atoms[i][0]
        j = i + 1  # atoms[i] alone always fits: every atom is <= max_chars
        while j < len(atoms) and atoms[j][1] - start <= max_chars:
            j += 1
        end = atoms[j - 1][1]
        spans.append((start, end))
        if j == len(atoms):
            break
        # Step back over the last pieces of this passage while they fit in the overlap (never back to `i`, so we
        # always advance), then forward again until the next passage can still take atom `j`.
        k = j
        while k - 1 > i and end - atoms[k - 1][0] <= overlap_chars:
            k -= 1
        while k < j and atoms[j][1] - atoms[k][0] > max_chars:
            k += 1
        i = k
    return spans


def _atoms(text: str, start: int, end: int, level: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut `text[start:end]` into pieces of at most `max_chars`, using the finest separator level needed."""
    if end - start <= max_chars:
        return [(start, end)]
    if level == len(_SEPARATORS):  # one unbroken run longer than a passage: hard cuts
        return [(s, min(s + max_chars, end)) for s in range(start, end, max_chars)]
    cuts = [m.end() for m in _SEPARATORS[level].finditer(text, start, end) if start < m.end() < end]
    bounds = [start, *cuts, end]
    atoms: list[tuple[int, int]] = []
    for piece_start, piece_end in itertools.pairwise(bounds):
        atoms.extend(_atoms(text, piece_start, piece_end, level + 1, max_chars))
    return atoms
