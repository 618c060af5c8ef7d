"""Grounded spelling: an adapter's near-miss copy of a document's rare name, code or number gets the document's own.

An adapter holds a document's facts approximately: on the held-out facts, half of its misses that the model gets
right in context are a letter or a digit or two away from the document's ("Captain Cuvpeo Sheskley" for Cuvpeino
Sheskley, 840,371 for 840,379). The
document's text is stored with its adapter, so an answer's rare words and numbers that the document does not hold
are replaced by the document's closest one when it is close enough. Common words are left alone (a tokenizer splits
them into fewer pieces than `min_pieces`), and so is every word the document holds; a correction is made only where
one candidate is closest, and each is reported so that a caller sees what was changed. A name of several capitalised
words ("Captain Fliemoo Paertson") that keeps a rare word the document lacks after that is compared whole with the
document's names of as many words: one part spelled right is evidence for the rest ("Captain Fenloo Paertson").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "DocumentLexicon",
    "GroundedText",
    "SpellingCorrection",
    "ground_pieces",
    "tokenizer_rarity",
]

TOKEN = re.compile(r"\w+(?:[-,.]\w+)*")  # whole identifiers and dotted names too, so that their parts stay apart
MIN_SIMILARITY = 0.75  # difflib ratio of a word (or code) and the document's closest one
MIN_PIECES = 3  # tokenizer pieces that make a word rare: invented names split into 3 or more, common words fewer
_NAME_WORD = r"[A-Z][^\W\d_]*(?:['-][^\W\d_]+)*"
NAME = re.compile(rf"(?<![\w'.-]){_NAME_WORD}(?:[ \t]+{_NAME_WORD})+(?![\w'-])")  # 2+ capitalised words
_NAME_TAIL = re.compile(rf"(?<![\w'.-])(?:{_NAME_WORD}[ \t]+)+$")  # capitalised words a next one may extend


@dataclass(frozen=True)
class SpellingCorrection:
    """One word of an answer replaced by the document's spelling."""

    original: str
    grounded: str
    similarity: float  # difflib ratio for words and codes; for numbers the share of digits that agree


@dataclass(frozen=True)
class GroundedText:
    text: str
    corrections: tuple[SpellingCorrection, ...] = ()


def _kind(token: str) -> str:
    """A "number" (digits, thousands commas, a decimal point), a "word" (letters, hyphens), a "code" (letters and
    digits, hyphens) or "other" (identifiers, dotted names, versions), which is never corrected."""
    if re.fullmatch(r"\d+(?:[,.]\d+)*", token):
        return "number"
    if re.fullmatch(r"[^\W\d_]+(?:-[^\W\d_]+)*", token):
        return "word"
    return "code" if re.fullmatch(r"[^\W_]+(?:-[^\W_]+)*", token) else "other"


def _digits(number: str) -> str:
    """The number without its thousands commas; a decimal point stays, so 1.5 and 15 never match."""
    return number.replace(",", "")


class DocumentLexicon:
    """The rare words, codes, numbers and names of one or more documents, which answers are grounded against."""

    def __init__(
        self, tokens: Iterable[str], is_rare: Callable[[Sequence[str]], list[bool]], names: Iterable[str] = ()
    ) -> None:
        unique = sorted(set(tokens))
        self.known = {t.lower() for t in unique}
        words = [t for t in unique if _kind(t) in ("word", "code")]
        rare = is_rare(words) if words else []
        self.rare: dict[str, list[str]] = {"word": [], "code": []}  # kind -> the document's rare ones
        for word, is_word_rare in zip(words, rare, strict=True):
            if is_word_rare:
                self.rare[_kind(word)].append(word)
        self.is_rare = is_rare
        self.numbers: dict[int, dict[str, str]] = {}  # length -> {number without commas: the document's spelling}
        for t in unique:
            if _kind(t) == "number":
                self.numbers.setdefault(len(_digits(t)), {}).setdefault(_digits(t), t)
        self.names: dict[int, dict[str, str]] = {}  # words -> {lowercased name: the document's spelling}
        for name in names:
            words = name.split()
            for size in range(2, len(words) + 1):  # "Captain Cuvpeino Sheskley" holds "Cuvpeino Sheskley" too
                for start in range(len(words) - size + 1):
                    part = " ".join(words[start : start + size])
                    self.names.setdefault(size, {}).setdefault(part.lower(), part)

    @classmethod
    def from_texts(cls, texts: Iterable[str], is_rare: Callable[[Sequence[str]], list[bool]]) -> DocumentLexicon:
        texts = list(texts)
        tokens = (t for text in texts for t in TOKEN.findall(text))
        return cls(tokens, is_rare, (name for text in texts for name in NAME.findall(text)))

    def _closest_number(self, token: str) -> SpellingCorrection | None:
        """A number of the same digits and point with at most 1 digit in 3 differing (one in a year, two in
        840,371, none in 42; 3857 takes the spelling 3,857)."""
        digits = _digits(token)
        count = sum(c.isdigit() for c in digits)
        scored = []
        for other, spelling in self.numbers.get(len(digits), {}).items():
            differ = sum(a != b for a, b in zip(digits, other, strict=True))
            if differ <= count // 3:
                scored.append((1 - differ / count, spelling))
        best = _single_best(scored)
        return None if best is None else SpellingCorrection(token, best[1], best[0])

    def _closest_word(self, token: str, min_similarity: float) -> SpellingCorrection | None:
        if not self.is_rare([token])[0]:
            return None
        best = _single_best(_similar(token, ((w.lower(), w) for w in self.rare[_kind(token)]), min_similarity))
        return None if best is None else SpellingCorrection(token, best[1], round(best[0], 3))

    def _closest_name(self, name: str, min_similarity: float) -> tuple[str, SpellingCorrection] | None:
        """(`name` with its words, or a run of 2+ of them that lacks a rare word of the document, replaced by the
        document's closest name of as many words, the correction), or None. Runs let "By Fliemoo Paertson" find
        "Fenloo Paertson"; the run of most words wins (more of the name agrees), then the most similar, and two
        such that would write different names refuse."""
        spans = [m.span() for m in re.finditer(r"\S+", name)]
        new_rare = [self._lacks_a_rare_word(name[start:end]) for start, end in spans]  # no token spans a space
        scored = []
        for size in range(2, len(spans) + 1):
            names = self.names.get(size)
            if not names:
                continue
            for first in range(len(spans) - size + 1):
                if not any(new_rare[first : first + size]):
                    continue
                start, end = spans[first][0], spans[first + size - 1][1]
                for ratio, spelling in _similar(" ".join(name[start:end].split()), names.items(), min_similarity):
                    scored.append((size, round(ratio, 3), start, end, spelling))
        if not scored:
            return None
        best = max(scored)
        written = {
            name[:start] + spelling + name[end:]
            for size, ratio, start, end, spelling in scored
            if (size, ratio) == best[:2]
        }
        if len(written) > 1:
            return None
        _, ratio, start, end, spelling = best
        return written.pop(), SpellingCorrection(name[start:end], spelling, ratio)

    def _lacks_a_rare_word(self, text: str) -> bool:
        new = [t for t in TOKEN.findall(text) if t.lower() not in self.known and _kind(t) in ("word", "code")]
        return bool(new) and any(self.is_rare(new))

    def ground(self, answer: str, min_similarity: float = MIN_SIMILARITY) -> GroundedText:
        """`answer` with each rare word, code or number the document lacks replaced by its closest one, and each
        name of several words that still lacks one by the document's closest name."""
        corrections: list[SpellingCorrection] = []
        parts, end = [], 0
        for match in NAME.finditer(answer):
            parts.append(self._ground_words(answer[end : match.start()], min_similarity, corrections))
            by_word: list[SpellingCorrection] = []
            text = self._ground_words(match.group(0), min_similarity, by_word)
            whole = self._closest_name(match.group(0), min_similarity) if self._lacks_a_rare_word(text) else None
            if whole is None:
                parts.append(text)
                corrections += by_word
            else:
                parts.append(whole[0])
                corrections.append(whole[1])
            end = match.end()
        parts.append(self._ground_words(answer[end:], min_similarity, corrections))
        return GroundedText("".join(parts), tuple(corrections))

    def _ground_words(self, text: str, min_similarity: float, corrections: list[SpellingCorrection]) -> str:
        """`text` with each rare word, code or number the document lacks replaced; the changes go to `corrections`."""

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            if token.lower() in self.known:
                return token
            kind = _kind(token)
            if kind == "number":
                found = self._closest_number(token)
            elif kind in ("word", "code"):
                found = self._closest_word(token, min_similarity)
            else:
                found = None
            if found is None:
                return token
            corrections.append(found)
            return found.grounded

        return TOKEN.sub(replace, text)


def _similar(target: str, candidates: Iterable[tuple[str, str]], min_similarity: float) -> list[tuple[float, str]]:
    """(difflib ratio, spelling) of each (lowercased, spelling) candidate at least `min_similarity` like `target`
    (case ignored); the cheap upper bounds skip most candidates before the full ratio."""
    matcher = difflib.SequenceMatcher(b=target.lower(), autojunk=False)
    scored = []
    for lowered, spelling in candidates:
        matcher.set_seq1(lowered)
        if matcher.real_quick_ratio() >= min_similarity and matcher.quick_ratio() >= min_similarity:
            ratio = matcher.ratio()
            if ratio >= min_similarity:
                scored.append((ratio, spelling))
    return scored


def _single_best(scored: list[tuple[float, str]]) -> tuple[float, str] | None:
    """The most similar (similarity, candidate), or None where there is none or two are as similar."""
    scored.sort(reverse=True)
    if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0]


def tokenizer_rarity(tokenizer, min_pieces: int = MIN_PIECES) -> Callable[[Sequence[str]], list[bool]]:
    """A word is rare when `tokenizer` splits one of its hyphenated parts (after a space, as inside a sentence)
    into `min_pieces` or more: "non-profit" is two common parts, "Cuvpeino" one rare one."""

    def is_rare(words: Sequence[str]) -> list[bool]:
        parts = [w.split("-") for w in words]
        flat = [f" {part}" for ps in parts for part in ps]
        pieces = [len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]] if flat else []
        rare, start = [], 0
        for ps in parts:
            rare.append(max(pieces[start : start + len(ps)]) >= min_pieces)
            start += len(ps)
        return rare

    return is_rare


def ground_pieces(
    pieces: Iterable[str], lexicon: DocumentLexicon, min_similarity: float = MIN_SIMILARITY
) -> Iterator[str]:
    """Stream `pieces` grounded: text is held back to its last whitespace, so that a word is grounded whole, and
    further back while it ends in capitalised words a next one may join into a name (no token of `TOKEN` spans
    whitespace and no name spans a cut, so the pieces joined equal the whole text grounded)."""
    pending = ""
    for piece in pieces:
        pending += piece
        cut = max(pending.rfind(c) for c in " \n\t\r") + 1
        tail = _NAME_TAIL.search(pending[:cut])
        if tail:
            cut = tail.start()
        if cut:
            yield lexicon.ground(pending[:cut], min_similarity).text
            pending = pending[cut:]
    if pending:
        yield lexicon.ground(pending, min_similarity).text
