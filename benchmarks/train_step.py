"""A training step with the teacher held in the pool (`teacher_top_k`) against one that runs the teacher's forward
over document and question at every step, and, with `--buckets`, with its chunks encoded in passes of similar
length (`encode_buckets`): time, peak memory and how far the binned KL is from the full one.

    python -m benchmarks.train_step --model /root/stage/model.gguf --top-k 256 --buckets 4 --out OUT_DIR

Every variant takes the same batches, chunk cuts and weights, round after round (`timed_interleaved`), so their
ratios hold on a shared host. A step here is the loss and its backward pass; the optimizer's update, the same in all,
is left out so that every round scores the same weights.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.result_files import save_result
from benchmarks.timing import PeakMemory, timed_interleaved
from d2l_rag.model.base import load_base_model
from d2l_rag.training.config import TrainConfig
from d2l_rag.training.pool import PoolItem, answer_examples, draw_examples
from d2l_rag.training.teacher import answer_targets
from d2l_rag.training.trainer import Trainer

__all__ = ["markdown", "run"]

DEFAULT_CONFIG = Path("configs/smollm2_r_constant.json")
DEFAULT_INIT = Path("d2l_rag/checkpoints/smollm2-135m-instruct")


def run(
    config: Path,
    model: str | None,
    init: Path | None,
    pool_size: int,
    steps: int,
    top_k: int,
    batch_size: int | None = None,
    buckets: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    lm = load_base_model(model, dtype="bfloat16" if cuda else "float32")
    fields = json.loads(config.read_text()) | {
        "teacher_top_k": 0,
        "encode_buckets": 1,
        "init_checkpoint": str(init) if init else None,
    }
    if batch_size:
        fields["batch_size"] = batch_size
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = TrainConfig(**fields | {"out_dir": out_dir})
        trainer = Trainer(cfg, lm=lm)
        t0 = time.perf_counter()
        exact_pool = answer_examples(lm, cfg, draw_examples(lm, cfg, seed=seed, n=pool_size))
        t1 = time.perf_counter()
        prompts, answers = [i.teacher_prompt for i in exact_pool], [i.answer for i in exact_pool]
        targets = answer_targets(lm, prompts, answers, top_k, cfg.teacher_batch)
        t2 = time.perf_counter()
        held_pool = [replace(item, teacher_top=t) for item, t in zip(exact_pool, targets, strict=True)]
        variants: list[tuple[str, list[PoolItem], Trainer]] = [
            ("teacher forward every step", exact_pool, trainer),
            ("teacher held in the pool", held_pool, trainer),
        ]
        if buckets > 1:  # the same weights (the same init and seed), chunks encoded in length buckets
            bucketed = Trainer(cfg.model_copy(update={"encode_buckets": buckets}), lm=lm)
            variants.append((f"teacher held, {buckets} length buckets", held_pool, bucketed))
        batch_rng = random.Random(seed)
        batches = [
            batch_rng.sample(range(len(exact_pool)), min(cfg.batch_size, len(exact_pool))) for _ in range(steps + 1)
        ]
        losses: list[list[float]] = [[] for _ in variants]

        def step_fn(v: int) -> Callable[[], None]:
            _, pool, runner = variants[v]
            rounds = iter(enumerate(batches))

            def step() -> None:
                i, rows = next(rounds)
                losses[v].append(_loss_and_backward(runner, [pool[r] for r in rows], i))

            return step

        timed = timed_interleaved([step_fn(v) for v in range(len(variants))], steps, lm.device, warmup=1)
        peaks = []
        for _, pool, runner in variants:
            with PeakMemory(lm.device) as peak:
                _loss_and_backward(runner, [pool[r] for r in batches[0]], 0)
            peaks.append(peak.bytes)
    tails = torch.cat([t.tail_logprob for t in targets]).exp()
    gaps = [(h - e) / e for e, h in zip(losses[0], losses[1], strict=True) if e > 0]
    return {
        "settings": {
            "config": str(config),
            "init": str(init) if init else None,
            "pool_drawn": pool_size,
            "pool_kept": len(exact_pool),
            "batch_size": cfg.batch_size,
            "steps": steps,
            "top_k": top_k,
            "buckets": buckets,
        },
        "pool_s": {"draw_and_answer": t1 - t0, "teacher_targets": t2 - t1},
        "variants": [
            {
                "name": name,
                "step_s": t.median_s,
                "speedup": timed[0].median_s / t.median_s,
                "peak_gb": peak / 1e9,
                "loss": statistics.mean(loss),
            }
            for (name, _, _), t, peak, loss in zip(variants, timed, peaks, losses, strict=True)
        ],
        "binned_minus_full_relative": {"mean": statistics.mean(gaps), "min": min(gaps), "max": max(gaps)},
        "teacher_tail_mass": {
            "mean": float(tails.mean()),
            "p99": float(tails.quantile(0.99)),
            "max": float(tails.max()),
        },
        "machine": {
            "device": str(lm.device),
            "gpu": torch.cuda.get_device_name() if cuda else None,
            "dtype": str(lm.dtype).removeprefix("torch."),
            "torch": torch.__version__,
        },
        "model": lm.name,
        "seconds": time.perf_counter() - started,
    }


def _loss_and_backward(runner: Trainer, items: list[PoolItem], cut_seed: int) -> float:
    """One step's loss and backward pass, gradients dropped; `cut_seed` seeds the chunk cuts, alike in every variant."""
    loss, _ = runner.loss_on(items, random.Random(cut_seed))
    loss.backward()
    runner.net.zero_grad(set_to_none=True)
    return loss.item()


def markdown(data: dict[str, Any]) -> str:
    s, gap, tail = data["settings"], data["binned_minus_full_relative"], data["teacher_tail_mass"]
    where = data["machine"]["gpu"] or data["machine"]["device"]
    rows = [
        f"| {v['name']} | {v['step_s']:.3f} | {v['speedup']:.2f}x | {v['peak_gb']:.2f} | {v['loss']:.4f} |"
        for v in data["variants"]
    ]
    return "\n".join(
        [
            "# Training step: teacher held in the pool (top-k) vs its forward at every step",
            "",
            f"{data['model']}, {where}, {data['machine']['dtype']}; config `{s['config']}` from `{s['init']}`; "
            f"{s['pool_kept']} of {s['pool_drawn']} pool examples kept; batch {s['batch_size']}, median of "
            f"{s['steps']} interleaved steps (loss and backward); k = {s['top_k']}; {data['seconds']:.0f} s.",
            "",
            "| step | seconds | speed | peak memory of a step (GB) | mean loss (KL: full, then binned) |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Pool: drawing and the teacher's answers {data['pool_s']['draw_and_answer']:.1f} s, its top-k targets "
            f"{data['pool_s']['teacher_targets']:.1f} s more. Binned KL relative to the full KL on the same batch: "
            f"mean {gap['mean']:+.1%} (min {gap['min']:+.1%}, max {gap['max']:+.1%}). The teacher's mass outside its "
            f"top k at an answer position: mean {tail['mean']:.3f}, 99th percentile {tail['p99']:.3f}, "
            f"max {tail['max']:.3f}.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config (its mix and lengths)")
    parser.add_argument("--model", help="base model path (default: the embedded SmolLM2 GGUF)")
    parser.add_argument("--init", type=Path, default=DEFAULT_INIT, help="hypernetwork weights to start from")
    parser.add_argument("--pool", type=int, default=512, help="examples drawn for the pool")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--batch-size", type=int, help="documents a step (default: the config's)")
    parser.add_argument("--buckets", type=int, default=1, help="also time chunks encoded in this many length buckets")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_step"))
    args = parser.parse_args(argv)
    data = run(args.config, args.model, args.init, args.pool, args.steps, args.top_k, args.batch_size, args.buckets)
    save_result(args.out, "train_step", data, markdown(data))


if __name__ == "__main__":
    main()
