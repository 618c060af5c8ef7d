"""Fictional facts planted in real prose: answers the base model cannot know, so it must read the document.

Every name is invented from syllables and every code is random; a word or code belongs to train or held-out by a
stable hash, so no held-out name or code is ever seen in training. One fact is asked about; the others are
distractors of the same shape, spread over the document.
"""

from __future__ import annotations

import calendar
import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from d2l_rag.training.examples import QAExample, Split
from d2l_rag.training.needle import plant_in_filler
from d2l_rag.training.prose import cut_text, prose_text, sentence_ends

__all__ = [
    "FACT_TYPES",
    "Fact",
    "facts_dataset",
    "magic_word",
    "make_fact",
    "make_facts_example",
    "name_split",
    "plant_in_prose",
]

_HELDOUT_EVERY = 5
_ONSETS = ["b", "br", "c", "cr", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "kr", "l", "m", "n", "p", "pr"]
_ONSETS += ["qu", "r", "s", "st", "t", "th", "tr", "v", "w", "z", "sh"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ae", "ia", "ou", "ei"]
_CODAS = ["", "", "", "n", "r", "l", "s", "m", "nd", "rt", "sk", "x", "v", "th"]
_TOWN_ENDS = ["moor", "ford", "wick", "haven", "stead", "mere", "holt", "gate", "brook", "fell", "bury", "vale", "ton"]
_SURNAME_ENDS = ["", "", "ley", "son", "ard", "well", "wright", "more", "ing"]
_ORG_KINDS = ["Institute", "Society", "Foundry", "Observatory", "Guild", "Collective", "Trust", "Academy", "Company"]
_DEVICES = ["engine", "lamp", "loom", "compass", "press", "telescope", "clock", "pump"]
_TITLES = ["Dr. ", "Professor ", "", ""]
_MONTHS = list(calendar.month_name)[1:]
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O, which read as digits


@dataclass(frozen=True)
class Fact:
    """One planted sentence, the questions it answers (each with its literal answer), and its invented names."""

    kind: str
    sentence: str
    questions: tuple[tuple[str, str], ...]
    names: tuple[str, ...]  # invented words and codes, all from one split


def name_split(name: str) -> Split:
    """Stable split of an invented word or code (case-insensitive)."""
    digest = hashlib.blake2b(name.lower().encode("utf-8"), digest_size=8).digest()
    return "heldout" if int.from_bytes(digest, "big") % _HELDOUT_EVERY == 0 else "train"


class _Namer:
    """Draws invented words and codes of one split, never the same one twice within a document."""

    def __init__(self, rng: random.Random, split: Split) -> None:
        self.rng, self.split, self.used = rng, split, set[str]()

    def _accept(self, make: Callable[[], str]) -> str:
        while True:
            name = make()
            if len(name) >= 5 and name.lower() not in self.used and name_split(name) == self.split:
                self.used.add(name.lower())
                return name

    def _stem(self, syllables: int) -> str:
        r = self.rng
        return "".join(r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS) for _ in range(syllables))

    def word(self) -> str:
        return self._accept(lambda: self._stem(self.rng.choice((2, 2, 3))).capitalize())

    def town(self) -> str:
        return self._accept(lambda: (self._stem(self.rng.choice((1, 2))) + self.rng.choice(_TOWN_ENDS)).capitalize())

    def person(self) -> tuple[str, str, str]:
        """(first, last, title); the answer is "first last", which the sentence contains without the title."""
        first = self._accept(lambda: (self._stem(2).rstrip("skxvth") + self.rng.choice("aeo")).capitalize())
        last = self._accept(lambda: (self._stem(self.rng.choice((1, 2))) + self.rng.choice(_SURNAME_ENDS)).capitalize())
        return first, last, self.rng.choice(_TITLES)

    def code(self) -> str:
        r = self.rng
        return self._accept(
            lambda: f"{''.join(r.choices(_LETTERS, k=2))}-{r.randrange(1000, 10_000)}-{r.choice(_LETTERS)}"
        )

    def badge(self) -> str:
        return self._accept(lambda: f"{self.rng.choice(_LETTERS)}{self.rng.randrange(10_000, 100_000)}")


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.randint(1700, 2019)}"


def _founded(n: _Namer, r: random.Random) -> Fact:
    first, last, title = n.person()
    person, org, year = f"{first} {last}", f"{n.word()} {r.choice(_ORG_KINDS)}", str(r.randint(1700, 2019))
    qs = ((f"Who founded the {org}?", person), (f"Who was the founder of the {org}?", person))
    qs += ((f"In what year was the {org} founded?", year), (f"When was the {org} founded?", year))
    return Fact("founded", f"{title}{person} founded the {org} in {year}.", qs, (first, last, org.split()[0]))


def _vault(n: _Namer, r: random.Random) -> Fact:
    name, code = n.word(), n.code()
    qs = (f"What is the access code for the {name} vault?", f"Which code opens the {name} vault?")
    qs += (f"What code gives access to the {name} vault?",)
    return Fact("vault", f"The access code for the {name} vault is {code}.", tuple((q, code) for q in qs), (name, code))


def _population(n: _Namer, r: random.Random) -> Fact:
    town, pop = n.town(), f"{r.randrange(1_000, 1_000_000):,}"
    qs = (f"What is the population of {town}?", f"How many people live in {town}?")
    qs += (f"How many inhabitants does {town} have?",)
    return Fact("population", f"The town of {town} has a population of {pop}.", tuple((q, pop) for q in qs), (town,))


def _birth(n: _Namer, r: random.Random) -> Fact:
    first, last, title = n.person()
    person, town, date = f"{first} {last}", n.town(), _date(r)
    qs = ((f"Where was {person} born?", town), (f"In which town was {person} born?", town))
    qs += ((f"When was {person} born?", date), (f"On what date was {person} born?", date))
    return Fact("birth", f"{title}{person} was born in {town} on {date}.", qs, (first, last, town))


def _mountain(n: _Namer, r: random.Random) -> Fact:
    peak, height = n.word(), f"{r.randrange(800, 8_800):,}"
    # the reference is the number: the question names the quantity, and "6,080 meters" is as right as "metres"
    qs = (f"How high is Mount {peak}?", f"What is the height of Mount {peak}?")
    qs += (f"How many metres above sea level does Mount {peak} rise?",)
    sentence = f"Mount {peak} rises {height} metres above sea level."
    return Fact("mountain", sentence, tuple((q, height) for q in qs), (peak,))


def _river(n: _Namer, r: random.Random) -> Fact:
    river, km = n.word(), f"{r.randrange(40, 4_000):,}"
    qs = (f"How long is the {river} River?", f"What is the length of the {river} River?")
    qs += (f"How many kilometres long is the {river} River?",)
    return Fact("river", f"The {river} River is {km} kilometres long.", tuple((q, km) for q in qs), (river,))


def _capital(n: _Namer, r: random.Random) -> Fact:
    town, province = n.town(), n.word()
    qs = (
        (f"What is the capital of {province}?", town),
        (f"Which town is the capital of the province of {province}?", town),
    )
    qs += ((f"Of which province is {town} the capital?", province),)
    return Fact("capital", f"{town} is the capital of the province of {province}.", qs, (town, province))


def _ship(n: _Namer, r: random.Random) -> Fact:
    first, last, _ = n.person()
    person, ship = f"{first} {last}", n.word()
    qs = (f"Who commanded the ship {ship}?", f"Who was the captain of the ship {ship}?")
    qs += (f"Which captain commanded the {ship}?",)
    sentence = f"The ship {ship} was commanded by Captain {person}."
    return Fact("ship", sentence, tuple((q, person) for q in qs), (first, last, ship))


def _invention(n: _Namer, r: random.Random) -> Fact:
    first, last, title = n.person()
    person, device, year = f"{first} {last}", f"{n.word()} {r.choice(_DEVICES)}", str(r.randint(1700, 2019))
    qs = ((f"Who invented the {device}?", person), (f"Who built the first {device}?", person))
    qs += ((f"In what year was the {device} invented?", year),)
    return Fact("invention", f"{title}{person} invented the {device} in {year}.", qs, (first, last, device.split()[0]))


def _badge(n: _Namer, r: random.Random) -> Fact:
    first, last, title = n.person()
    person, org, badge = f"{first} {last}", f"{n.word()} {r.choice(_ORG_KINDS)}", n.badge()
    qs = (f"What is {person}'s badge number?", f"Which badge number does {person} hold at the {org}?")
    qs += (f"What badge number was {person} given at the {org}?",)
    sentence = f"{title}{person}'s badge number at the {org} is {badge}."
    return Fact("badge", sentence, tuple((q, badge) for q in qs), (first, last, org.split()[0], badge))


_MAKERS: dict[str, Callable[[_Namer, random.Random], Fact]] = {
    "founded": _founded,
    "vault": _vault,
    "population": _population,
    "birth": _birth,
    "mountain": _mountain,
    "river": _river,
    "capital": _capital,
    "ship": _ship,
    "invention": _invention,
    "badge": _badge,
}
FACT_TYPES: tuple[str, ...] = tuple(_MAKERS)


def make_fact(rng: random.Random, kind: str, split: Split = "train", used: set[str] | None = None) -> Fact:
    """One fact of `kind`; names in `used` (lower-case) are avoided and the new ones added to it."""
    if kind not in _MAKERS:
        raise ValueError(f"fact kind must be one of {FACT_TYPES}, got {kind!r}")
    namer = _Namer(rng, split)
    if used is not None:
        namer.used = used
    return _MAKERS[kind](namer, rng)


def magic_word(rng: random.Random, split: Split = "train") -> str:
    """An invented name or code of the kinds the facts plant (a word, a town, a person's name, a vault code), from
    one split: the magic-word needle asks the adapter to spell one back, as name and code questions do."""
    namer = _Namer(rng, split)
    kind = rng.choice(("word", "town", "person", "code"))
    if kind == "person":
        first, last, _ = namer.person()
        return f"{first} {last}"
    return namer.town() if kind == "town" else namer.code() if kind == "code" else namer.word()


def _plant(prose: str, sentences: list[str], rng: random.Random) -> str:
    """Each sentence at a sentence boundary, the i-th in the i-th of len(sentences) equal strata of depth."""
    boundaries = sorted({0, *sentence_ends(prose)})
    n = len(sentences)
    offsets = []
    for i in range(n):
        target = rng.uniform(i / n, (i + 1) / n) * len(prose)
        offsets.append(min(boundaries, key=lambda b: abs(b - target)))
    for offset, sentence in sorted(zip(offsets, sentences, strict=True), key=lambda p: -p[0]):
        before, after = prose[:offset].rstrip(), prose[offset:].lstrip(" ")
        prose = " ".join(p for p in (before, sentence) if p) + (" " if after and after[0] != "\n" else "") + after
    return prose


def make_facts_example(
    rng: random.Random,
    target_tokens: int,
    count_tokens: Callable[[str], int],
    split: Split = "train",
    n_facts: int = 1,
    asked_kind: str | None = None,
    setting: Literal["prose", "filler"] = "prose",
) -> QAExample:
    """Prose of about `target_tokens` tokens with `n_facts` fictional facts; a question about one of them.

    `asked_kind`: the type of the asked fact (None = any); the other facts are of any type.
    `setting="filler"`: the facts go on lines of the needle's filler haystack instead of into prose (kind
    "facts_filler"), the setting between the magic-word needle and facts in prose (copy_bridges.py).
    """
    if n_facts < 1:
        raise ValueError(f"n_facts must be at least 1, got {n_facts}")
    if asked_kind is not None and asked_kind not in FACT_TYPES:
        raise ValueError(f"asked_kind must be one of {FACT_TYPES}, got {asked_kind!r}")
    if setting not in ("prose", "filler"):
        raise ValueError(f"setting must be 'prose' or 'filler', got {setting!r}")
    used: set[str] = set()
    facts = []  # kinds drawn between facts as before, so the held-out set of every seed stays the same
    for i in range(n_facts):
        kind = asked_kind if i == 0 and asked_kind else rng.choice(FACT_TYPES)
        facts.append(make_fact(rng, kind, split, used))
    sentences = [f.sentence for f in facts]
    rng.shuffle(sentences)  # the asked fact lands in a random stratum
    if setting == "prose":
        document = plant_in_prose(rng, sentences, target_tokens, count_tokens, split)
    else:
        document = plant_in_filler(rng, sentences, target_tokens, count_tokens)
    asked = facts[0]
    question, answer = rng.choice(asked.questions)
    meta = {
        "fact_type": asked.kind,
        "n_facts": str(n_facts),
        "names": "|".join(name for f in facts for name in f.names),
        "asked_names": "|".join(asked.names),
        "fact": asked.sentence,
    }
    kind = "facts" if setting == "prose" else "facts_filler"
    return QAExample(document, question, answer, kind, document.index(asked.sentence) / len(document), meta)


def plant_in_prose(
    rng: random.Random, sentences: list[str], target_tokens: int, count_tokens: Callable[[str], int], split: Split
) -> str:
    """Real prose of `split` with `sentences` planted, the i-th in the i-th of len(sentences) equal strata of
    depth, about `target_tokens` tokens in all.

    The token counter runs on the sentences, once on a sample of the prose (to learn its characters per token)
    and on the result (at most three corrections while it is off by more than 5%), never in a growing loop.
    """
    fact_tokens = count_tokens(" ".join(sentences))
    budget = max(0, target_tokens - fact_tokens)
    pool = prose_text(rng, 10 * budget + 400, split)  # >= 10 chars per token covers any tokenizer
    sample = pool[:8000]
    prose = cut_text(pool, int(budget * len(sample) / max(count_tokens(sample), 1)))
    document = _plant(prose, sentences, rng)
    for attempt in range(3):  # proportional corrections of the length
        total = count_tokens(document)
        if not budget or not prose or abs(total - target_tokens) <= 0.05 * target_tokens:
            break
        # the first cuts at a sentence end near the new length; later ones at a word, as two sentence ends that
        # straddle the target (e.g. 252 and 293 words for 270) would otherwise alternate forever
        chars = int(len(prose) * budget / max(total - fact_tokens, 1))
        prose = cut_text(pool, chars, tolerance=0.05 if attempt == 0 else 0.0)
        document = _plant(prose, sentences, rng)
    return document


def facts_dataset(
    seed: int,
    n: int,
    lengths: Sequence[int],
    count_tokens: Callable[[str], int],
    split: Split = "train",
    max_facts: int = 4,
) -> Iterator[QAExample]:
    """`n` facts examples, lengths cycled, 1..max_facts facts each."""
    rng = random.Random(seed)
    for i in range(n):
        yield make_facts_example(rng, lengths[i % len(lengths)], count_tokens, split, rng.randint(1, max_facts))
