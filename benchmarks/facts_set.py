"""A saved set of held-out facts questions, so every machine asks the same ones.

The facts generator plants fictional facts in prose read from the local Python and its installed packages, so the
same seed draws other documents (and other fact types) on another Python version or package set: the GPU boxes
(Python 3.12) and this project's CPU machines (3.11) scored the same checkpoint on different questions. A set
drawn once and saved as JSON makes scores from any machine and any session comparable.

    python -m benchmarks.facts_set --out benchmarks/data/facts_heldout.json   # draw it again (this machine's prose)
    python -m benchmarks.facts_set --seed 4242 --out benchmarks/data/facts_heldout_seed4242.json  # another draw

More than one set: 200 questions cannot tell two checkpoints a few points apart (stage R2 against M: +6 on the
saved set, p = 0.29), so the draws of other seeds that checkpoints were also scored on are saved beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from d2l_rag.training.examples import QAExample, Split

__all__ = ["DEFAULT_FACTS_SET", "FactsSet", "draw_facts_set", "facts_set_from", "load_facts_set", "save_facts_set"]

DEFAULT_FACTS_SET = Path(__file__).parent / "data" / "facts_heldout.json"
_FIELDS = ("document", "question", "answer", "kind", "depth", "meta")


class FactsSet(dict[int, list[QAExample]]):
    """{length in tokens: examples}, with the split they were drawn from and, once read, the file and its hash."""

    def __init__(
        self,
        examples: dict[int, list[QAExample]],
        split: Split,
        path: Path | None = None,
        sha256: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(examples)
        self.split = split
        self.path = path
        self.sha256 = sha256
        self.seed = seed  # the draw's seed (None: a set saved before seeds were recorded)

    def check_covers(self, lengths: Sequence[int], n: int) -> None:
        """Refuse before any work when a benchmark would ask for lengths or counts the set does not hold."""
        short = [length for length in lengths if len(self.get(length, ())) < n]
        if short:
            have = {length: len(examples) for length, examples in sorted(self.items())}
            raise ValueError(
                f"{self.path or 'the facts set'} holds {have} examples by length; {n} of {short} asked "
                "(draw a set that covers them with python -m benchmarks.facts_set, or pass --facts-set fresh)"
            )


def facts_set_from(
    count: Callable[[str], int], lengths: Sequence[int], n: int, split: Split = "heldout", seed: int | None = None
) -> FactsSet:
    """The examples `facts_eval(..., seed=seed)` draws (default: its own seed), `n` of each length as `count`
    measures tokens."""
    from d2l_rag.training.evaluate import FACTS_SEED, facts_examples  # torch and transformers: only to draw

    seed = FACTS_SEED if seed is None else seed
    return FactsSet({length: facts_examples(count, length, n, split, seed) for length in lengths}, split, seed=seed)


def draw_facts_set(
    model: str | None, lengths: Sequence[int], n: int, split: Split = "heldout", seed: int | None = None
) -> FactsSet:
    """The examples facts_eval would draw on this machine, `n` of each length (token counts of `model`)."""
    from d2l_rag.model import load_base_model
    from d2l_rag.training.pool import token_counter

    return facts_set_from(token_counter(load_base_model(model)), lengths, n, split, seed)


def save_facts_set(facts: FactsSet, path: Path) -> str:
    """Write the set as JSON (with where its prose came from) and return the file's sha256."""
    data = {
        "split": facts.split,
        **({"seed": facts.seed} if facts.seed is not None else {}),
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
    return FactsSet(examples, split, path, hashlib.sha256(raw).hexdigest(), data.get("seed"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.facts_set", description=__doc__)
    parser.add_argument("--model", help="base model path whose tokenizer sizes the documents (default: embedded)")
    parser.add_argument("--lengths", default="256,1024")
    parser.add_argument("--n", type=int, default=100, help="examples per length")
    parser.add_argument("--split", choices=("heldout", "train"), default="heldout")
    parser.add_argument("--seed", type=int, help="the draw (default: facts_eval's own seed)")
    parser.add_argument("--out", type=Path, default=DEFAULT_FACTS_SET)
    args = parser.parse_args(argv)
    facts = draw_facts_set(args.model, [int(x) for x in args.lengths.split(",")], args.n, args.split, args.seed)
    sha = save_facts_set(facts, args.out)
    print(f"{args.out}: {sum(map(len, facts.values()))} {args.split} facts examples, sha256 {sha[:16]}")


if __name__ == "__main__":
    main()
