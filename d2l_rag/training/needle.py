"""Needle in a haystack: a "special magic number" hidden at a chosen depth in repeated filler lines.

The magic-word variant hides an invented name or code instead (`magic="word"`): the same haystack and depths, but
the answer is rare sub-word pieces to copy rather than four digits, which is what name and code facts ask.

The format follows the reference evaluation, so numbers measured here compare with published ones. Documents
can be 64k tokens long, so the token counter is called on one filler line and on the needle, and the number of
lines is computed, instead of growing the text and re-tokenising it. The needle gets a line of its own at a
sentence boundary (splitting a filler line there), so documents of two lines or more reach every depth bin.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from d2l_rag.training.examples import QAExample, Split

__all__ = [
    "FILLER",
    "N_DEPTH_BINS",
    "QUESTION",
    "WORD_QUESTION",
    "make_needle_example",
    "needle_dataset",
    "needle_sentence",
    "number_split",
    "plant_in_filler",
    "word_needle_sentence",
]

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
QUESTION = "What is the special magic number? Reply with only the number."
WORD_QUESTION = "What is the special magic word? Reply with only the word."
N_DEPTH_BINS = 10
_SEP = "\n"  # filler lines and the needle are separate lines


def needle_sentence(number: int) -> str:
    return f"The special magic number is {number}."


def word_needle_sentence(word: str) -> str:
    return f"The special magic word is {word}."


def number_split(number: int) -> Split:
    """One number in five is held out, chosen by a hash, so a held-out score never measures a memorised number.

    A hash, not `number % 5`: held-out multiples of 5 taught the network that a needle never ends in 0 or 5,
    and it then missed the last digit of every held-out needle (measured: 0/16 held-out, 18/18 train).
    """
    return "heldout" if hashlib.sha256(str(number).encode()).digest()[0] % 5 == 0 else "train"


def _draw_number(rng: random.Random, split: Split) -> int:
    while True:
        number = rng.randrange(1000, 10_000)
        if number_split(number) == split:
            return number


def _line_count(target_tokens: int, line_tokens: int, needle_tokens: int) -> int:
    return max(1, round((target_tokens - needle_tokens) / max(line_tokens, 1)))


def _sentence_starts(n_lines: int) -> list[int]:
    """Offsets in the haystack where a filler sentence starts, plus its end: the places a needle may go."""
    line = len(FILLER) + len(_SEP)
    starts = [0] + [i + 2 for i in range(len(FILLER)) if FILLER.startswith(". ", i)]
    return [k * line + s for k in range(n_lines) for s in starts] + [n_lines * line]


def _insert(haystack: str, offset: int, needle: str) -> str:
    """The needle on a line of its own; a filler line is split in two when the offset is mid-line."""
    return _SEP.join(part for part in (haystack[:offset].rstrip(), needle, haystack[offset:].lstrip()) if part)


def _needle_offset(rng: random.Random, n_lines: int, needle: str, depth_bin: int) -> int:
    """A sentence boundary whose depth falls in the bin, uniform over those that do.

    Depth is the needle's character offset over the document length (the filler is uniform, so this is the
    token depth up to rounding). A line of filler has 5 sentences, so every bin is reachable from 2 lines on;
    shorter documents get the boundary nearest to the bin's centre.
    """
    total = n_lines * (len(FILLER) + len(_SEP)) + len(needle)
    return _boundary_in(rng, _sentence_starts(n_lines), total, depth_bin / N_DEPTH_BINS, (depth_bin + 1) / N_DEPTH_BINS)


def _boundary_in(rng: random.Random, starts: list[int], total: int, lo: float, hi: float) -> int:
    """A boundary of `starts` whose depth (offset / total) is in [lo, hi), uniform over those that are; the one
    nearest to the middle of the range when none is."""
    inside = [s for s in starts if lo <= s / total < hi]
    if inside:
        return rng.choice(inside)
    return min(starts, key=lambda s: abs(s / total - (lo + hi) / 2))


def make_needle_example(
    rng: random.Random,
    target_tokens: int,
    count_tokens: Callable[[str], int],
    depth_bin: int | None = None,
    split: Split = "train",
    with_needle: bool = True,
    teacher_tokens: int | None = None,
    magic: Literal["number", "word"] = "number",
) -> QAExample:
    """One haystack of about `target_tokens` tokens (within 5% or one filler line) with the needle in `depth_bin`.

    `with_needle=False` gives a negative: the same haystack and question with no number anywhere (answer "").
    `magic="word"` hides an invented name or code of `split` (kind "word_needle", scored as a facts answer is).
    `teacher_tokens`: when the haystack is longer, the example carries a haystack of about that length with
    the same needle in the same depth bin for the teacher to read (the filler is uniform, so the teacher's
    answer does not depend on how much of it there is).
    """
    if depth_bin is not None and not 0 <= depth_bin < N_DEPTH_BINS:
        raise ValueError(f"depth_bin must be in [0, {N_DEPTH_BINS}), got {depth_bin}")
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if teacher_tokens is not None and teacher_tokens <= 0:
        raise ValueError(f"teacher_tokens must be > 0, got {teacher_tokens}")
    if magic not in ("number", "word"):
        raise ValueError(f"magic must be 'number' or 'word', got {magic!r}")
    if magic == "word" and not with_needle:
        raise ValueError("a magic-word haystack always holds its word: negatives are number haystacks")
    line_tokens = count_tokens(FILLER + _SEP)
    shorten = teacher_tokens is not None and target_tokens > teacher_tokens
    if not with_needle:
        n_lines = _line_count(target_tokens, line_tokens, 0)
        document = _SEP.join([FILLER] * n_lines)
        teacher = _SEP.join([FILLER] * _line_count(teacher_tokens, line_tokens, 0)) if shorten else None
        meta = {"needle": "none", "lines": str(n_lines)}
        return QAExample(document, QUESTION, "", "negative", None, meta, teacher_document=teacher)

    if magic == "word":
        from d2l_rag.training.facts import magic_word

        answer = magic_word(rng, split)
        needle, question, kind = word_needle_sentence(answer), WORD_QUESTION, "word_needle"
    else:
        answer = str(_draw_number(rng, split))
        needle, question, kind = needle_sentence(int(answer)), QUESTION, "needle"
    needle_tokens = count_tokens(needle + _SEP)
    bin_ = rng.randrange(N_DEPTH_BINS) if depth_bin is None else depth_bin

    def haystack_with_needle(n_lines: int) -> str:
        return _insert(_SEP.join([FILLER] * n_lines), _needle_offset(rng, n_lines, needle, bin_), needle)

    n_lines = _line_count(target_tokens, line_tokens, needle_tokens)
    document = haystack_with_needle(n_lines)
    teacher = haystack_with_needle(_line_count(teacher_tokens, line_tokens, needle_tokens)) if shorten else None
    depth = document.index(needle) / len(document)
    meta = {magic: answer, "depth_bin": str(int(depth * N_DEPTH_BINS)), "lines": str(n_lines)}
    return QAExample(document, question, answer, kind, depth, meta, teacher_document=teacher)


def plant_in_filler(
    rng: random.Random, sentences: Sequence[str], target_tokens: int, count_tokens: Callable[[str], int]
) -> str:
    """The filler haystack of about `target_tokens` tokens with `sentences` planted on lines of their own, the i-th
    at a sentence boundary in the i-th of len(sentences) equal strata of depth (so facts, not only needles, can be
    asked about in the needle's setting)."""
    if not sentences:
        raise ValueError("plant_in_filler needs at least one sentence")
    n_lines = _line_count(target_tokens, count_tokens(FILLER + _SEP), count_tokens(_SEP.join(sentences) + _SEP))
    haystack = _SEP.join([FILLER] * n_lines)
    starts, n = _sentence_starts(n_lines), len(sentences)
    offsets = [_boundary_in(rng, starts, len(haystack), i / n, (i + 1) / n) for i in range(n)]
    for offset, sentence in sorted(zip(offsets, sentences, strict=True), key=lambda p: -p[0]):
        haystack = _insert(haystack, offset, sentence)  # the last first, so earlier offsets still hold
    return haystack


def needle_dataset(
    seed: int,
    n: int,
    lengths: Sequence[int],
    count_tokens: Callable[[str], int],
    split: Split = "train",
) -> Iterator[QAExample]:
    """`n` needle examples, lengths cycled and, within each length, depth bins cycled, so every cell is even."""
    rng = random.Random(seed)
    for i in range(n):
        length, round_ = lengths[i % len(lengths)], i // len(lengths)
        yield make_needle_example(rng, length, count_tokens, depth_bin=round_ % N_DEPTH_BINS, split=split)
