"""Why the adapter misses what in context gets right: a near miss, another fact of the document, or neither.

    python -m benchmarks.miss_kinds R2/niah.json IN_CONTEXT/niah.json --also R2_S/niah.json IN_CONTEXT_S/niah.json

For every facts question that the in-context run answers right and the adapter run wrong (two `benchmarks.niah`
runs on one saved set, read from the set named in their settings), the adapter's answer is one of:
- **near miss**: its grounded answer is right (`d2l_rag.grounding` gave it the document's spelling);
- **another fact**: it holds an invented name of the document that the reference lacks, or a number of the document
  other than the reference: the adapter gave back something the document says, but not what was asked;
- **neither**: a value the document does not hold, or none.
Many "another fact" misses would say the adapter stores the facts but binds them to the wrong question; near misses
and "neither" say it stores the asked one imprecisely or not at all.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.compare import load_run, same_questions
from benchmarks.facts_set import FactsSet, load_facts_set
from d2l_rag.training.examples import QAExample
from d2l_rag.training.scoring import ANSWER_FORMS, answer_form

__all__ = ["KINDS", "Misses", "miss_kind", "misses"]

KINDS = ("near miss", "another fact", "neither")
ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"(?<![\w,])\d[\d,]*\d(?![\w,])")  # two digits or more; a year, 2,922, a code's 6758


@dataclass
class Misses:
    """Counts by answer form and kind, with each kind's answers in the order met (to read them)."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: {form: Counter() for form in ANSWER_FORMS})
    answers: dict[str, list[tuple[str, str, str]]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def add(self, example: QAExample, answer: str, kind: str) -> None:
        self.counts[answer_form(example.answer)][kind] += 1
        self.answers[kind].append((example.question, example.answer, answer))


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def miss_kind(example: QAExample, answer: str, grounded_right: bool) -> str:
    """The kind (one of KINDS) of an adapter's wrong answer to a facts question."""
    if grounded_right:
        return "near miss"
    names = [n for n in example.meta.get("names", "").split("|") if n and n not in example.answer]
    asked = set(example.meta.get("asked_names", "").split("|"))
    other_names = [n for n in names if n not in asked and n not in example.question]
    others = _numbers(example.document) - _numbers(example.answer) - _numbers(example.question)
    if any(re.search(rf"\b{re.escape(n)}\b", answer) for n in other_names) or _numbers(answer) & others:
        return "another fact"
    return "neither"


def _facts_set(run: dict[str, Any], path: Path) -> FactsSet:
    """The saved set a run asked, found where its settings say or by name in benchmarks/data, hash checked."""
    recorded = run["settings"].get("facts_set")
    if not recorded:
        raise ValueError(f"{path}: its facts were drawn on its machine, not read from a saved set")
    where = Path(recorded["path"])
    if not where.is_file():
        where = ROOT / "benchmarks" / "data" / where.name
    facts = load_facts_set(where)
    if facts.sha256 != recorded["sha256"]:
        raise ValueError(f"{path}: asked saved set {recorded['sha256'][:12]}, {where} is {facts.sha256[:12]}")
    return facts


def misses(adapter_run: Path, in_context_run: Path, into: Misses | None = None) -> Misses:
    """Classify the adapter's misses where in context was right, over every length both runs scored."""
    a, b = load_run(adapter_run), load_run(in_context_run)
    reason = same_questions(a, b, "facts")
    if reason:
        raise ValueError(f"{adapter_run} and {in_context_run} did not ask the same questions: {reason}")
    facts = _facts_set(a, adapter_run)
    adapter, in_context = a["facts"].get("adapter") or {}, b["facts"].get("in_context") or {}
    lengths = [length for length in adapter if in_context.get(length)]
    if not lengths:
        raise ValueError(f"no facts length scored with the adapter in {adapter_run} and in context in {in_context_run}")
    out = into or Misses()
    for length in lengths:
        ra, rb = adapter[length], in_context[length]
        if "answers" not in ra or "grounded_right" not in ra:
            raise ValueError(f"{adapter_run}: facts at {length} tokens keep no answers (an older run); run it again")
        for i, example in enumerate(facts[int(length)][: len(ra["right"])]):
            if rb["right"][i] and not ra["right"][i]:
                answer = ra["answers"][i]
                out.add(example, answer, miss_kind(example, answer, ra["grounded_right"][i]))
    return out


def markdown(found: Misses, examples: int) -> str:
    lines = ["| answer form | misses | " + " | ".join(KINDS) + " |", "|---|---|" + "---|" * len(KINDS)]
    total: Counter[str] = Counter()
    for form, counts in found.counts.items():
        total.update(counts)
        lines.append(f"| {form} | {sum(counts.values())} | " + " | ".join(str(counts[k]) for k in KINDS) + " |")
    lines.append(f"| all | {sum(total.values())} | " + " | ".join(str(total[k]) for k in KINDS) + " |")
    for kind in KINDS:
        lines += ["", f"{kind}, first {examples}:"]
        lines += [f"- {q} ({ref}): {answer!r}" for q, ref, answer in found.answers[kind][:examples]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.miss_kinds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("adapter_run", type=Path, help="niah.json of a run with the adapter")
    parser.add_argument("in_context_run", type=Path, help="niah.json of a run in context on the same saved set")
    parser.add_argument("--also", nargs=2, type=Path, action="append", default=[], metavar=("ADAPTER", "IN_CONTEXT"))
    parser.add_argument("--examples", type=int, default=5, help="answers listed for each kind")
    args = parser.parse_args(argv)
    found = Misses()
    for adapter_run, in_context_run in [(args.adapter_run, args.in_context_run), *map(tuple, args.also)]:
        try:
            misses(adapter_run, in_context_run, found)
        except ValueError as err:
            raise SystemExit(str(err)) from None
    print(markdown(found, args.examples), end="")


if __name__ == "__main__":
    main()
