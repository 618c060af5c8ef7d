"""`python -m d2l_rag.training CONFIG.json [--steps N] [--out DIR] [--init CKPT] [--base-model PATH]`: training.

Also what `d2l-rag train` calls. Works under `accelerate launch` unchanged for several GPUs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from d2l_rag.training.config import TrainConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m d2l_rag.training", description=__doc__)
    parser.add_argument("config", type=Path, help="JSON file with TrainConfig fields")
    parser.add_argument("--steps", type=int, help="override steps")
    parser.add_argument("--out", type=Path, help="override out_dir")
    parser.add_argument("--init", help="override init_checkpoint")
    parser.add_argument("--base-model", help="override base_model (.gguf file or HF directory)")
    args = parser.parse_args(argv)
    data = json.loads(args.config.read_text())
    overrides = {"steps": args.steps, "out_dir": args.out, "init_checkpoint": args.init, "base_model": args.base_model}
    for key, value in overrides.items():
        if value is not None:
            data[key] = str(value) if isinstance(value, Path) else value
    cfg = TrainConfig.model_validate(data)
    from d2l_rag.training.trainer import Trainer

    Trainer(cfg).fit()


if __name__ == "__main__":
    main()
