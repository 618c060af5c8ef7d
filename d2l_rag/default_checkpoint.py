"""Finding the shipped hypernetwork checkpoint that fits a base model (by fingerprint, never by name)."""

from __future__ import annotations

from pathlib import Path

from d2l_rag.model.base import FrozenLM
from d2l_rag.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_checkpoint_config

__all__ = ["SHIPPED_CHECKPOINTS", "find_checkpoint"]

SHIPPED_CHECKPOINTS = Path(__file__).parent / "checkpoints"


def find_checkpoint(lm: FrozenLM, search: Path = SHIPPED_CHECKPOINTS) -> Path | None:
    """The first checkpoint directory under `search` trained for `lm`'s fingerprint, or None."""
    if not search.is_dir():
        return None
    for config_path in sorted(search.glob(f"*/{CONFIG_NAME}")):
        directory = config_path.parent
        if not (directory / WEIGHTS_NAME).is_file():
            continue
        if read_checkpoint_config(directory).base == lm.fingerprint:
            return directory
    return None
