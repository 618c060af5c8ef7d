"""The model under test: the frozen base LM and the hypernetwork D2L uses, found the way the library finds it.

Without a trained checkpoint D2L's accuracy is reported as "no checkpoint"; its costs (internalize time, adapter
bytes, batching) do not depend on the weights, so they are still measured, with an untrained hypernetwork of the
default architecture, and labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from d2l_rag.config import HypernetConfig
from d2l_rag.model.base import FrozenLM, load_base_model
from d2l_rag.model.checkpoint import LoadedHypernetwork, load_checkpoint

__all__ = ["Subject", "load_subject", "require_checkpoint"]


@dataclass
class Subject:
    lm: FrozenLM
    hypernet: LoadedHypernetwork
    trained: bool  # False: the hypernetwork is untrained (costs only, no accuracy)
    checkpoint: str | None  # directory it came from
    model_name: str

    @property
    def checkpoint_id(self) -> str:
        return self.hypernet.id if self.trained else "none (untrained hypernetwork, costs only)"


def _tiny() -> tuple[FrozenLM, HypernetConfig]:
    from d2l_rag.testing import tiny_llama

    return tiny_llama(seed=0, window=4096), HypernetConfig(
        rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=128
    )


def require_checkpoint(lm: FrozenLM, checkpoint: str | Path | None) -> str | Path:
    """`checkpoint`, or the shipped one that fits `lm`; a command measuring a trained network stops without one."""
    from d2l_rag.default_checkpoint import find_checkpoint

    found = checkpoint or find_checkpoint(lm)
    if found is None:
        raise SystemExit(f"no checkpoint fits {lm.fingerprint.describe()}; pass --checkpoint DIR")
    return found


def load_subject(
    model: str, checkpoint: str | Path | None = None, device: str | None = None, dtype: str | None = None
) -> Subject:
    """`model`: "tiny", "default" (the embedded SmolLM2) or a path; `checkpoint`: a directory, or None to search."""
    if model == "tiny":
        lm, config = _tiny()
        if device is not None:
            lm.model.to(device)
    else:
        lm = load_base_model(None if model == "default" else model, device=device, dtype=dtype)
        config = HypernetConfig()
    if checkpoint is None and model != "tiny":
        from d2l_rag.default_checkpoint import find_checkpoint

        checkpoint = find_checkpoint(lm)
    if checkpoint is not None:
        return Subject(lm, load_checkpoint(checkpoint, lm), True, str(checkpoint), lm.name)
    hypernet = LoadedHypernetwork.fresh(lm, config, seed=0)
    with torch.no_grad():  # non-zero output scalers, so adapters have the real shape and real apply cost
        scale = hypernet.network.out_scale
        scale.copy_(torch.randn(scale.shape, generator=torch.Generator().manual_seed(0)) * 0.02)
    return Subject(lm, hypernet, False, None, lm.name)
