"""Two ways of answering through a document's adapter that need no training, tried on the saved facts sets.

    python -m benchmarks.decoding_probes views --k 3 --out benchmarks/results/decoding_probes_cpu/views3
    python -m benchmarks.decoding_probes contrast --alpha 0.5 --beta 0.1 --out benchmarks/results/decoding_probes_cpu/x
    python -m benchmarks.compare benchmarks/results/facts_cpu_stage_r2/niah.json DIR/niah.json

The adapter's misses are its values blurred (a digit or a letter off, `benchmarks.miss_kinds`). Two guesses at
mending that in decoding, each greedy, every row of a question's group taking the one token picked from the
group's log-probabilities:

- views: the adapter is built from `k` orderings of the document's paragraphs (as given, halves swapped,
  reversed) and each token is the argmax of their mean log-probability. If a blurred value were the noise of one
  reading, other readings would average it out.
- contrast: context-aware decoding (Shi et al. 2023, arXiv 2305.14739) with the adapter as the context: the
  argmax of (1 + alpha) log p_adapter - alpha log p_bare over the tokens the adapter gives at least `beta` times
  its likeliest token's probability, i.e. what the adapter adds to the bare model, amplified.

The result has the shape of a `benchmarks.niah` run (facts, adapter mode only, same settings keys), so
`benchmarks.compare` and `benchmarks.miss_kinds` pair it with a plain run of the same checkpoint on the same set.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from benchmarks.facts_set import DEFAULT_FACTS_SET, load_facts_set
from benchmarks.result_files import save_result
from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.config import GenerationConfig
from d2l_rag.generation import Answer, Generator
from d2l_rag.model.base import FrozenLM

__all__ = ["GroupDecoder", "contrast", "markdown", "mean_of_group", "paragraph_orderings", "run"]

METHODS = ("views", "contrast")
Combine = Callable[[torch.Tensor], torch.Tensor]  # (questions, group, vocab) log-probs -> (questions, vocab) scores
Group = tuple[DocumentAdapter | None, ...]


def paragraph_orderings(document: str, k: int) -> list[str]:
    """The document as given, then (k >= 2) with its halves swapped, then (k = 3) reversed; by paragraphs, or by
    sentences when it has one paragraph. Every ordering holds the same text pieces."""
    if not 1 <= k <= 3:
        raise ValueError(f"k must be 1, 2 or 3 orderings, got {k}")
    pieces, sep = document.split("\n\n"), "\n\n"
    if len(pieces) < 2:
        pieces, sep = re.split(r"(?<=\.) ", document), " "
    half = len(pieces) // 2
    return [sep.join(p) for p in (pieces, pieces[half:] + pieces[:half], pieces[::-1])[:k]]


def mean_of_group(logprobs: torch.Tensor) -> torch.Tensor:
    return logprobs.mean(1)


def contrast(alpha: float, beta: float) -> Combine:
    """Groups of (adapter, bare) rows scored by context-aware decoding, with its plausibility cut at `beta`."""
    if alpha < 0 or not 0 < beta <= 1:
        raise ValueError(f"contrast needs alpha >= 0 and 0 < beta <= 1, got alpha {alpha}, beta {beta}")

    def combine(logprobs: torch.Tensor) -> torch.Tensor:
        adapter, bare = logprobs[:, 0], logprobs[:, 1]
        scores = (1 + alpha) * adapter - alpha * bare
        plausible = adapter >= adapter.max(-1, keepdim=True).values + torch.log(torch.tensor(beta))
        return scores.masked_fill(~plausible, float("-inf"))

    return combine


class _GroupScores(LogitsProcessor):
    """Gives every row of a group of `size` consecutive rows the group's combined scores, so greedy decoding
    appends the same token to all of them and they stay one answer."""

    def __init__(self, size: int, combine: Combine) -> None:
        self.size, self.combine = size, combine

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logprobs = torch.log_softmax(scores.float(), -1)
        rows, vocab = logprobs.shape
        combined = self.combine(logprobs.view(rows // self.size, self.size, vocab))
        return combined[:, None].expand(-1, self.size, -1).reshape(rows, vocab)


class GroupDecoder(Generator):
    """A `Generator` whose adapters are groups (one row each, None = the bare model) answering one question."""

    def __init__(self, lm: FrozenLM, combine: Combine, config: GenerationConfig | None = None) -> None:
        super().__init__(lm, config)
        if self.config.num_beams != 1 or self.config.do_sample:
            raise ValueError("group decoding is greedy: num_beams 1, no sampling")
        self.combine = combine

    def answer_batch(  # type: ignore[override]
        self, questions: Sequence[str], adapters: Sequence[Group], contexts: None = None, config: None = None
    ) -> list[Answer]:
        sizes = {len(group) for group in adapters}
        if len(sizes) != 1 or len(adapters) != len(questions) or contexts is not None or config is not None:
            raise ValueError("one group of adapters a question, every group as long; no contexts, no config")
        size = sizes.pop()
        prompts = [self.prompt_ids(q) for q in questions for _ in range(size)]
        ids, mask = self._inputs(prompts, self.config)
        start = time.perf_counter()
        with self.adapter_context([a for group in adapters for a in group]):
            out = self.lm.model.generate(
                input_ids=ids,
                attention_mask=mask,
                logits_processor=LogitsProcessorList([_GroupScores(size, self.combine)]),
                **self._generate_kwargs(self.config),
            )
        # every row of a group holds the same answer: its first row's
        return self.decoded(out[::size, ids.shape[1] :], prompts[::size], time.perf_counter() - start)


class _GroupBuilder:
    """What `evaluate`'s scoring calls `build` on: here a document gives a group of adapters."""

    def __init__(self, build: Callable[[str], Group]) -> None:
        self.build = build


def run(
    model: str | None,
    checkpoint: str | None,
    facts_set_path: Path,
    n: int,
    method: str,
    k: int = 3,
    alpha: float = 0.5,
    beta: float = 0.1,
    batch_size: int = 8,
) -> dict[str, Any]:
    from benchmarks.subject import require_checkpoint
    from d2l_rag.model import load_base_model, load_checkpoint
    from d2l_rag.training.evaluate import answer_contains, score_modes

    facts = load_facts_set(facts_set_path)
    lengths = sorted(facts)
    facts.check_covers(lengths, n)
    lm = load_base_model(model)
    found = require_checkpoint(lm, checkpoint)
    hypernet = load_checkpoint(found, lm)
    plain = AdapterBuilder(lm, hypernet, batch_chunks=16)
    if method == "views":
        combine: Combine = mean_of_group
        builder = _GroupBuilder(lambda text: tuple(plain.build(v) for v in paragraph_orderings(text, k)))
        decoding = {"method": method, "k": k}
    else:
        combine = contrast(alpha, beta)
        builder = _GroupBuilder(lambda text: (plain.build(text), None))
        decoding = {"method": method, "alpha": alpha, "beta": beta}
    decoder = GroupDecoder(lm, combine, GenerationConfig(max_new_tokens=32))
    started, by_length = time.perf_counter(), {}
    with torch.no_grad():
        for length in lengths:
            examples = list(facts[length][:n])
            scored = score_modes(lm, builder, decoder, examples, ("adapter",), answer_contains, batch_size)  # type: ignore[arg-type]
            by_length[str(length)] = scored["adapter"]
            print(f"{length} tokens: {sum(by_length[str(length)]['right'])}/{n}", flush=True)
    return {
        "niah": {},
        "word_niah": {},
        "facts": {"adapter": by_length},
        "settings": {
            "lengths": [],
            "n_per_length": 0,
            "modes": ["adapter"],
            "facts_lengths": lengths,
            "facts_n": n,
            "facts_split": facts.split,
            "facts_set": {"path": str(facts.path), "sha256": facts.sha256},
            "num_beams": 1,
            "decoding": decoding,
        },
        "checkpoint": {"path": str(found), "id": hypernet.id},
        "model": lm.name,
        "seconds": time.perf_counter() - started,
    }


def markdown(data: dict[str, Any]) -> str:
    settings = data["settings"]
    how = ", ".join(f"{key} {value}" for key, value in settings["decoding"].items())
    lines = [
        f"Held-out facts, adapter alone, {how} (checkpoint {data['checkpoint']['id']}, set "
        f"{settings['facts_set']['sha256'][:12]}, {data['seconds']:.0f} s).",
        "",
        "| tokens | right | grounded |",
        "|---|---|---|",
    ]
    for length, result in data["facts"]["adapter"].items():
        right, grounded, n = sum(result["right"]), sum(result["grounded_right"]), result["n"]
        lines.append(f"| {length} | {right}/{n} | {grounded}/{n} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decoding_probes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("--model", help="base model path (default: the embedded SmolLM2 GGUF)")
    parser.add_argument("--checkpoint", help="hypernetwork checkpoint dir (default: the shipped one)")
    parser.add_argument("--facts-set", type=Path, default=DEFAULT_FACTS_SET, help="a saved set (benchmarks/data)")
    parser.add_argument("--n", type=int, default=100, help="questions of each length of the set")
    parser.add_argument("--k", type=int, default=3, help="views: orderings of the document (1-3)")
    parser.add_argument("--alpha", type=float, default=0.5, help="contrast: weight of the adapter's difference")
    parser.add_argument("--beta", type=float, default=0.1, help="contrast: plausibility cut, of the top probability")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.n <= 0:
        raise SystemExit(f"--n {args.n}: must be positive")
    try:
        paragraph_orderings("", args.k)
        contrast(args.alpha, args.beta)
    except ValueError as err:
        raise SystemExit(f"--k/--alpha/--beta: {err}") from None
    if not args.facts_set.is_file():
        raise SystemExit(f"--facts-set {args.facts_set}: no such file")
    data = run(args.model, args.checkpoint, args.facts_set, args.n, args.method, args.k, args.alpha, args.beta)
    save_result(args.out, "niah", data, markdown(data))


if __name__ == "__main__":
    main()
