"""Checkpoint averaging: the mean of hypernetworks trained from one start, written as a checkpoint.

Two runs annealed from the same weights land in one basin, and their mean often generalises better than either
(Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima"; Wortsman et al. 2022, "Model soups"). The weights
are read and checked on the CPU without loading a base model: every input must have the same hypernetwork config,
base fingerprint and tensor shapes, so the mean is a network the base model can load.

    python -m d2l_rag.training.average CKPT_A CKPT_B --out DIR [--weights 0.5 0.5]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from d2l_rag.errors import D2LError
from d2l_rag.model.checkpoint import (
    WEIGHTS_NAME,
    CheckpointConfig,
    read_checkpoint_config,
    read_weights,
    write_checkpoint,
)

__all__ = ["average_checkpoints", "main"]


def _check_same_network(first: Path, config: CheckpointConfig, other: Path, other_config: CheckpointConfig) -> None:
    for field in ("hypernet", "base"):
        if getattr(config, field) != getattr(other_config, field):
            raise D2LError(
                f"cannot average {first} and {other}: their {field} configs differ "
                f"({getattr(config, field)!r} against {getattr(other_config, field)!r})"
            )


def average_checkpoints(
    directories: Sequence[str | Path],
    out: str | Path,
    weights: Sequence[float] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write the weighted mean of `directories` (uniform by default) to `out`, atomically.

    Floating tensors are averaged in float32 and stored in the first checkpoint's dtype. The config is the first
    checkpoint's (its `base_name` and `max_composed_chunks` included) with `training` replaced by the given notes,
    or by default by a record of the inputs: their ids, steps and weights.
    """
    paths = [Path(d) for d in directories]
    if len(paths) < 2:
        raise D2LError(f"averaging needs at least 2 checkpoints, got {len(paths)}")
    if weights is None:
        weights = [1.0] * len(paths)
    if len(weights) != len(paths):
        raise D2LError(f"{len(weights)} weights for {len(paths)} checkpoints: give one weight per checkpoint")
    if any(not w > 0 for w in weights):
        raise D2LError(f"averaging weights must be positive, got {list(weights)}")
    shares = [w / sum(weights) for w in weights]

    configs = [read_checkpoint_config(p) for p in paths]
    for path, config in zip(paths[1:], configs[1:], strict=True):
        _check_same_network(paths[0], configs[0], path, config)
    states, ids = zip(*(read_weights(p) for p in paths), strict=True)
    for path, state in zip(paths[1:], states[1:], strict=True):
        reshaped = {k for k in state.keys() & states[0].keys() if state[k].shape != states[0][k].shape}
        mismatched = sorted(set(state) ^ set(states[0]) | reshaped)
        if mismatched:
            raise D2LError(f"cannot average {paths[0]} and {path}: tensors differ in name or shape: {mismatched[:5]}")

    mean = {}
    for name, tensor in states[0].items():
        if tensor.is_floating_point():
            total = sum(share * state[name].float() for share, state in zip(shares, states, strict=True))
            mean[name] = total.to(tensor.dtype).contiguous()
        else:
            mean[name] = tensor
    if training is None:
        training = {
            "average_of": [
                {"checkpoint": str(p), "id": i, "step": c.training.get("step"), "weight": s}
                for p, i, c, s in zip(paths, ids, configs, shares, strict=True)
            ]
        }
    config = configs[0].model_copy(update={"training": training})

    return write_checkpoint(mean, config, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m d2l_rag.training.average", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint directories (2 or more)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write the averaged checkpoint to")
    parser.add_argument("--weights", type=float, nargs="+", help="one positive weight a checkpoint (default: equal)")
    args = parser.parse_args(argv)
    try:
        out = average_checkpoints(args.checkpoints, args.out, args.weights)
    except D2LError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"wrote {out / WEIGHTS_NAME} (id {read_weights(out)[1]})")


if __name__ == "__main__":
    main()
