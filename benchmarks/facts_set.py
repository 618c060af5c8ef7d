"""A saved set of held-out facts questions, so every machine asks the same ones.

The facts generator plants fictional facts in prose read from the local Python and its installed packages, so the
same seed draws other documents (and other fact types) on another Python version or package set: the GPU boxes
(Python 3.12) and this project's CPU machines (3.11) scored the same checkpoint on different questions. A set
drawn once and saved as JSON makes scores from any machine and any session comparable.

    python -m benchmarks.facts_set --out benchmarks/data/facts_heldout.json   # draw it again (this machine's prose)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from d2l_rag.training.examples import QAExample, Split

__all__ = ["DEFAULT_FACTS_SET", "FactsSet", "draw_facts_set", "load_facts_set", "save_facts_set"]

DEFAULT_FACTS_SET = Path(__file__).parent / "data" / "facts_heldout.json"
_FIELDS = ("document", "question", "answer", "kind", "depth", "meta")


class FactsSet(dict[int, list[QAExample]]):
    """{length in tokens: examples}, with the split they were drawn from and, once read, the file and its hash."""

    def __init__(
        self, examples: dict[int, list[QAExample]], split: Split, path: Path | None = None, sha256: str | None = None
    ) -> None:
        super().__init__(examples)
        self.split = split
        self.path = path
        self.sha256 = sha256

    def check_covers(self, lengths: Sequence[int], n: int) -> None:
        """Refuse before any work when a benchmark would ask for lengths or counts the set does not hold."""
        short = [length for length in lengths if len(self.get(length, ())) < n]
        if short:
            have = {length: len(examples) for length, examples in sorted(self.items())}
            raise ValueError(
                f"{self.path or 'the facts set'} holds {have} examples by length; {n} of {short} asked "
                "(draw a set that covers them with python -m benchmarks.facts_set, or pass --facts-set fresh)"
            )


def draw_facts_set(model: str | None, lengths: Sequence[int], n: int, split: Split = "heldout") -> FactsSet:
    """The examples facts_eval would draw on this machine, `n` of each length (token counts of `model`)."""
    from d2l_rag.model import load_base_model
    from d2l_rag.training.evaluate import facts_examples
    from d2l_rag.training.pool import token_counter

    count = token_counter(load_base_model(model))
    return FactsSet({length: facts_examples(count, length, n, split) for length in lengths}, split)


def save_facts_set(facts: FactsSet, path: Path) -> str:
    """Write the set as JSON (with where its prose came from) and return the file's sha256."""
    data = {
        "split": facts.split,
        "drawn_with": {"python": platform.python_version(), "platform": platform.platform()},
        "lengths": {
            str(length): [{name: getattr(ex, name) for name in _FIELDS} for ex in examples]
            for length, examples in sorted(facts.items())
        },
    }
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # a failed write never leaves half a set where a benchmark would read it
    return hashlib.sha256(text.encode()).hexdigest()


def load_facts_set(path: Path) -> FactsSet:
    """Read a set written by save_facts_set; a missing file or one of another shape is refused, naming the path."""
    if not path.is_file():
        raise ValueError(f"no facts set at {path} (draw one with python -m benchmarks.facts_set)")
    raw = path.read_bytes()
    try:
        data: dict[str, Any] = json.loads(raw)
        examples = {
            int(length): [QAExample(**{name: item[name] for name in _FIELDS}) for item in items]
            for length, items in data["lengths"].items()
        }
        split = data["split"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a facts set written by benchmarks.facts_set: {err!r}") from err
    if split not in ("train", "heldout"):
        raise ValueError(f"{path}: split must be 'train' or 'heldout', got {split!r}")
    return FactsSet(examples, split, path, hashlib.sha256(raw).hexdigest())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.facts_set", description=__doc__)
    parser.add_argument("--model", help="base model path whose tokenizer sizes the documents (default: embedded)")
    parser.add_argument("--lengths", default="256,1024")
    parser.add_argument("--n", type=int, default=100, help="examples per length")
    parser.add_argument("--split", choices=("heldout", "train"), default="heldout")
    parser.add_argument("--out", type=Path, default=DEFAULT_FACTS_SET)
    args = parser.parse_args(argv)
    facts = draw_facts_set(args.model, [int(x) for x in args.lengths.split(",")], args.n, args.split)
    sha = save_facts_set(facts, args.out)
    print(f"{args.out}: {sum(map(len, facts.values()))} {args.split} facts examples, sha256 {sha[:16]}")


if __name__ == "__main__":
    main()
