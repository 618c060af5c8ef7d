"""Attention at training's ever-changing lengths: every SDPA backend against the one torch leaves out of the list.

    python -m benchmarks.attention_backends --out OUT_DIR

R3's step profile (docs/training.md) spent a third of the host's time in `aten::_cudnn_attention_forward` and its
backward, ~1.6 ms a call against ~0.4 ms of kernel: cuDNN builds a graph for each new shape, and a training step
meets new shapes all the time (its chunk and document lengths are drawn). This times what a step asks of attention,
a forward and backward through every layer at one drawn length with a padding mask, for torch's default choice and
for the same list without cuDNN, round after round on the same lengths (`timed_interleaved`), wall time with the
host's share in it. Dimensions default to SmolLM2-135M's (30 layers, 9 query heads, head size 64).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.result_files import save_result
from benchmarks.timing import timed_interleaved
from d2l_rag.training.trainer import TRAINING_ATTENTION

__all__ = ["markdown", "run"]

VARIANTS: dict[str, list[SDPBackend] | None] = {
    "torch's choice (cuDNN first on Hopper)": None,
    "without cuDNN (training's list)": TRAINING_ATTENTION,
}


def run(
    steps: int,
    batch: int = 32,
    layers: int = 30,
    heads: int = 9,
    head_size: int = 64,
    min_len: int = 64,
    max_len: int = 1600,
    seed: int = 0,
) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    rng = random.Random(seed)
    lengths = [rng.randint(min_len, max_len) for _ in range(steps + 1)]  # a new shape every step, as in training

    def step_fn(backends: list[SDPBackend] | None) -> Callable[[], None]:
        rounds = iter(lengths)

        def step() -> None:
            t = next(rounds)
            shape = (batch, heads, t, head_size)
            q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
            valid = torch.arange(t, device=device) < torch.randint(t // 2, t + 1, (batch, 1), device=device)
            mask = valid[:, None, None, :] & torch.ones(t, t, device=device, dtype=torch.bool).tril()
            with sdpa_kernel(backends) if backends else nullcontext():
                out = sum(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).float().mean() for _ in range(layers))
                out.backward()

        return step

    timed = timed_interleaved([step_fn(b) for b in VARIANTS.values()], steps, device, warmup=1)
    return {
        "settings": {
            "steps": steps,
            "batch": batch,
            "layers": layers,
            "heads": heads,
            "head_size": head_size,
            "lengths": [min_len, max_len],
        },
        "variants": [
            {"name": name, "step_s": t.median_s, "speedup": timed[0].median_s / t.median_s}
            for name, t in zip(VARIANTS, timed, strict=True)
        ],
        "machine": {
            "device": str(device),
            "gpu": torch.cuda.get_device_name() if cuda else None,
            "dtype": str(dtype).removeprefix("torch."),
            "torch": torch.__version__,
        },
    }


def markdown(data: dict[str, Any]) -> str:
    s, m = data["settings"], data["machine"]
    rows = [f"| {v['name']} | {v['step_s'] * 1e3:.1f} | {v['speedup']:.2f}x |" for v in data["variants"]]
    return "\n".join(
        [
            "# Attention at drawn lengths: torch's backend choice against the list without cuDNN",
            "",
            f"{m['gpu'] or m['device']}, {m['dtype']}, torch {m['torch']}; batch {s['batch']}, {s['heads']} heads of "
            f"{s['head_size']}, {s['layers']} layers (forward and backward) at a new length in "
            f"{s['lengths'][0]}..{s['lengths'][1]} every step, padding mask; median of {s['steps']} interleaved steps.",
            "",
            "| attention | ms a step | speed |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant, each at a new length")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--max-len", type=int, default=1600)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/attention_backends"))
    args = parser.parse_args(argv)
    data = run(args.steps, batch=args.batch, layers=args.layers, max_len=args.max_len)
    save_result(args.out, "attention_backends", data, markdown(data))


if __name__ == "__main__":
    main()
