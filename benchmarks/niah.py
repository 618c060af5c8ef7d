"""Needle-in-a-haystack and held-out fictional-facts benchmark: one command, JSON + markdown + PNG.

    python -m benchmarks.niah --out benchmarks/results/niah_gpu             # full: 1k..64k, 50 a length
    python -m benchmarks.niah --lengths 1024,2048 --n 10 --facts-n 20        # quick
    python -m benchmarks.niah --render benchmarks/results/niah_gpu/niah.json  # markdown + plot from a JSON
    python -m benchmarks.niah --max-composed-chunks 0 ...                      # compose every chunk
    python -m benchmarks.niah --facts-split train ...                          # facts of the kind training saw
    python -m benchmarks.niah --facts-set fresh ...                            # facts drawn on this machine
    python -m benchmarks.niah --word-lengths 1024,4096 ...                     # magic words (names, codes) too

Modes: the D2L adapter with the question alone, in-context (where the document fits the window) and the base model
with no document. Exact match: the first 4-digit number of the answer is the needle's; facts: the reference answer
appears in the answer. Needles and facts come from the held-out splits that training never sees (facts from the
training split with `--facts-split train`: the gap tells fitting from generalising). The held-out facts are read from
the saved set benchmarks/data/facts_heldout.json, the same questions on every machine (benchmarks/facts_set.py says
why); `--facts-set fresh` draws them from this machine's prose instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks.facts_set import DEFAULT_FACTS_SET, FactsSet, load_facts_set

DEFAULT_LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
MODES = ("adapter", "in_context", "no_document")


def run(
    model: str | None,
    checkpoint: str | None,
    lengths: list[int],
    n: int,
    facts_lengths: list[int],
    facts_n: int,
    batch_size: int,
    max_chunks: int | None = None,
    facts_split: str = "heldout",
    dtype: str | None = None,
    facts_set: FactsSet | None = None,
    modes: tuple[str, ...] = MODES,
    word_lengths: list[int] | None = None,
    num_beams: int = 1,
    chunk_tokens: int | None = None,
) -> dict[str, Any]:
    import torch
    import transformers

    from benchmarks.subject import require_checkpoint
    from d2l_rag.adapters.builder import composition_limit
    from d2l_rag.model import load_base_model, load_checkpoint
    from d2l_rag.model.precision import describe_precision
    from d2l_rag.training.evaluate import facts_eval, niah_eval

    lm = load_base_model(model, dtype=dtype)
    found = require_checkpoint(lm, checkpoint)
    hypernet = load_checkpoint(found, lm)
    started = time.perf_counter()
    with torch.no_grad():
        common: dict[str, Any] = {
            "modes": modes,
            "batch_size": batch_size,
            "max_chunks": max_chunks,
            "num_beams": num_beams,
            "chunk_tokens": chunk_tokens,
        }
        niah = niah_eval(lm, hypernet, lengths, n, **common)
        words = niah_eval(lm, hypernet, word_lengths or [], n, magic="word", **common)
        facts = facts_eval(
            lm,
            hypernet,
            facts_lengths,
            facts_n,
            split=facts_split,
            examples=facts_set,
            **common,
        )
    return {
        "niah": niah,
        "word_niah": words,
        "facts": facts,
        "settings": {
            "lengths": lengths,
            "n_per_length": n,
            "word_lengths": word_lengths or [],
            "modes": list(modes),
            "facts_lengths": facts_lengths,
            "facts_n": facts_n,
            "facts_split": facts_split,
            "facts_set": None if facts_set is None else {"path": str(facts_set.path), "sha256": facts_set.sha256},
            "chunk_tokens": chunk_tokens or hypernet.config.hypernet.chunk_tokens,
            "max_composed_chunks": composition_limit(hypernet, max_chunks),
            "num_beams": num_beams,
            "context_window": lm.context_window,
        },
        "checkpoint": {"path": str(found), "id": hypernet.id, "training_step": hypernet.config.training.get("step")},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": str(lm.device),
            "dtype": str(lm.dtype).removeprefix("torch."),
            "hypernet_precision": describe_precision(lm.device),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "model": lm.name,
        "seconds": time.perf_counter() - started,
    }


def _cell(result: dict[str, Any] | None, key: str = "accuracy") -> str:
    return "n/a (beyond window)" if result is None else f"{result[key]:.2f} (n={result['n']})"


def _table(table: dict[str, dict[str, Any]], lengths: list[int], key: str = "accuracy") -> list[str]:
    lines = ["| tokens | " + " | ".join(table) + " |", "|---" * (len(table) + 1) + "|"]
    for length in lengths:
        lines.append(f"| {length} | " + " | ".join(_cell(table[m].get(str(length)), key) for m in table) + " |")
    return lines


GROUNDED_NOTE = (
    "The same answers with grounded spelling (`d2l_rag.grounding`: a rare name, code or number the document lacks "
    "takes the document's closest one):"
)


def _composition(settings: dict[str, Any]) -> str:
    cap = settings.get("max_composed_chunks")
    return "every chunk composed" if cap is None else f"the {cap} most salient chunks composed"


def _decoding(settings: dict[str, Any]) -> str:
    beams = settings.get("num_beams", 1)
    return "greedy decoding" if beams == 1 else f"beam search of {beams}"


def _facts_title(settings: dict[str, Any]) -> str:
    split = settings.get("facts_split", "heldout")
    title = "Held-out fictional facts (answer found)" if split == "heldout" else f"Fictional facts, {split} split"
    saved = settings.get("facts_set")
    if saved:
        return f"{title}, saved set `{Path(saved['path']).name}` ({saved['sha256'][:12]})"
    return title if "facts_set" not in settings else f"{title}, drawn on this machine"


def markdown(data: dict[str, Any]) -> str:
    machine = data["machine"]
    lines = [
        f"# Needle in a haystack and fictional facts — {data['model']}",
        "",
        f"Checkpoint `{data['checkpoint']['id']}` (step {data['checkpoint']['training_step']}), "
        f"chunk {data['settings']['chunk_tokens']} tokens, {_composition(data['settings'])}, "
        f"{_decoding(data['settings'])}, "
        f"native window {data['settings']['context_window']}; "
        f"{machine['gpu'] or machine['device']}"
        f"{', ' + machine['dtype'] if 'dtype' in machine else ''}"
        f"{', hypernetwork ' + machine['hypernet_precision'] if 'hypernet_precision' in machine else ''}"
        f", {data['seconds']:.0f} s.",
        "",
    ]
    for title, key in (
        ("Needle in a haystack (exact match)", "niah"),
        ("Magic word in a haystack: an invented name or code (answer found)", "word_niah"),
        (_facts_title(data["settings"]), "facts"),
    ):
        table = data.get(key, {})  # no word_niah in JSON from before it was measured
        lengths = sorted({int(k) for mode in table.values() for k in mode}, key=int)
        if not lengths:  # the section was not asked for (--lengths '' or --facts-lengths '')
            continue
        lines += [f"## {title}", "", *_table(table, lengths), ""]
        grounded = {m: t for m, t in table.items() if all(r is None or "grounded_accuracy" in r for r in t.values())}
        if grounded:  # JSON from before grounding was measured has none
            lines += [GROUNDED_NOTE, "", *_table(grounded, lengths, "grounded_accuracy"), ""]
    adapter = data["niah"].get("adapter", {})
    if adapter:
        lines += [
            "## Adapter accuracy by needle depth (rows: tokens, columns: depth bin 0-9)",
            "",
            "| tokens | " + " | ".join(str(i) for i in range(10)) + " |",
            "|---" * 11 + "|",
        ]
        for length, result in sorted(adapter.items(), key=lambda kv: int(kv[0])):
            depth = result["by_depth"]
            lines.append(
                f"| {length} | " + " | ".join(f"{depth.get(str(i), float('nan')):.2f}" for i in range(10)) + " |"
            )
    lines += _facts_by_type(data["facts"])
    return "\n".join(lines) + "\n"


def _facts_by_type(facts: dict[str, Any]) -> list[str]:
    """Right answers by fact type and by answer form, summed over lengths (JSON from before a count was kept has
    no such table)."""
    return _facts_counted(facts, "by_type", "fact type") + _facts_counted(facts, "by_answer", "answer form")


def _facts_counted(facts: dict[str, Any], key: str, label: str) -> list[str]:
    counts: dict[str, dict[str, list[int]]] = {}
    for mode, table in facts.items():
        for result in table.values():
            for kind, c in (result or {}).get(key, {}).items():
                total = counts.setdefault(kind, {}).setdefault(mode, [0, 0])
                total[0] += c["right"]
                total[1] += c["n"]
    if not counts:
        return []
    modes = list(facts)
    lines = ["", f"## Facts right by {label} (all lengths)", "", f"| {label} | " + " | ".join(modes) + " |"]
    lines.append("|---" * (len(modes) + 1) + "|")
    for kind, by_mode in sorted(counts.items()):
        cells = [f"{by_mode[m][0]}/{by_mode[m][1]}" if m in by_mode else "n/a" for m in modes]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def plot(data: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "niah", "Needle in a haystack"), (axes[1], "facts", "Held-out facts")):
        for mode, table in data[key].items():
            points = sorted((int(k), v["accuracy"]) for k, v in table.items() if v)
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=mode)
        ax.axvline(data["settings"]["context_window"], color="grey", linestyle=":", label="native window")
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("document tokens")
        ax.set_ylabel("accuracy")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def write(data: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "niah.json").write_text(json.dumps(data, indent=2))
    (out / "niah.md").write_text(markdown(data))
    if not plot(data, out / "niah.png"):
        print("matplotlib missing: no plot (render later with --render)")


def _lengths(text: str, flag: str) -> list[int]:
    try:
        lengths = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"{flag} {text!r}: token counts separated by commas, e.g. 1024,2048") from None
    if any(n <= 0 for n in lengths):
        raise SystemExit(f"{flag} {text!r}: token counts must be positive")
    return lengths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.niah", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="base model path (default: the embedded SmolLM2 GGUF)")
    parser.add_argument("--checkpoint", help="hypernetwork checkpoint dir (default: the shipped one)")
    parser.add_argument(
        "--lengths", default=",".join(map(str, DEFAULT_LENGTHS)), help="needle document lengths ('' = no needles)"
    )
    parser.add_argument("--n", type=int, default=50, help="needle examples per length (depths cycle over 10 bins)")
    parser.add_argument(
        "--word-lengths", default="", help="magic-word needle document lengths, --n a length (default: none)"
    )
    parser.add_argument("--facts-lengths", default="256,1024", help="facts document lengths ('' = no facts)")
    parser.add_argument("--facts-n", type=int, default=100)
    parser.add_argument("--facts-split", choices=("heldout", "train"), default="heldout")
    parser.add_argument(
        "--facts-set",
        help="saved facts set (default: benchmarks/data/facts_heldout.json for held-out facts) or 'fresh' to draw",
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"modes to score, comma-separated (default: {','.join(MODES)})"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--chunk-tokens", type=int, help="tokens per chunk the adapter is built from (default: the checkpoint's)"
    )
    parser.add_argument(
        "--num-beams", type=int, default=1, help="beam search width for every mode (default: 1, greedy decoding)"
    )
    parser.add_argument(
        "--max-composed-chunks",
        type=int,
        help="chunks an adapter composes at most, the most salient kept (default: the checkpoint's limit; 0 = all)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        help="the base model's dtype (default: float32 on CPU, bfloat16 on GPU)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/niah"))
    parser.add_argument("--render", type=Path, help="only rewrite markdown and plot from this JSON")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads(args.render.read_text())
        write(data, args.render.parent)
        return
    facts_lengths = _lengths(args.facts_lengths, "--facts-lengths")
    lengths = _lengths(args.lengths, "--lengths")
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise SystemExit(f"--modes {args.modes!r}: each must be one of {', '.join(MODES)}")
    if not 1 <= args.num_beams <= 16:
        raise SystemExit(f"--num-beams {args.num_beams}: must be 1 to 16")
    if args.chunk_tokens is not None and args.chunk_tokens < 1:
        raise SystemExit(f"--chunk-tokens {args.chunk_tokens}: must be positive")
    facts_set = args.facts_set or ("fresh" if args.facts_split == "train" else str(DEFAULT_FACTS_SET))
    saved = None
    if facts_set != "fresh":  # checked before the model loads: a long GPU run must not fail at its last stage
        try:
            saved = load_facts_set(Path(facts_set))
            if saved.split != args.facts_split:
                raise ValueError(f"{facts_set} holds {saved.split} facts, not {args.facts_split}")
            saved.check_covers(facts_lengths, args.facts_n)
        except ValueError as err:
            raise SystemExit(str(err)) from None
    data = run(
        args.model,
        args.checkpoint,
        lengths,
        args.n,
        facts_lengths,
        args.facts_n,
        args.batch_size,
        args.max_composed_chunks,
        args.facts_split,
        args.dtype,
        saved,
        modes,
        _lengths(args.word_lengths, "--word-lengths"),
        args.num_beams,
        args.chunk_tokens,
    )
    write(data, args.out)
    print(markdown(data))


if __name__ == "__main__":
    main()
