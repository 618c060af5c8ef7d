"""Hypernetwork checkpoints: `hypernetwork.safetensors` + `config.json` naming the base model they fit.

Loading checks the base fingerprint field by field before touching weights (as nanoGPT's from_pretrained
checks shapes), and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from d2l_rag.config import HypernetConfig
from d2l_rag.errors import CheckpointMismatchError, D2LError
from d2l_rag.model.base import FrozenLM
from d2l_rag.model.fingerprint import BaseFingerprint
from d2l_rag.model.hypernetwork import Hypernetwork, TargetShape
from d2l_rag.model.targets import find_target_modules

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CheckpointConfig",
    "LoadedHypernetwork",
    "build_hypernetwork",
    "load_checkpoint",
    "read_weights",
    "save_checkpoint",
    "write_checkpoint",
]

WEIGHTS_NAME = "hypernetwork.safetensors"
CONFIG_NAME = "config.json"


class CheckpointConfig(BaseModel):
    """The JSON next to the weights."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = Field(default=1, description="Bumped when the layout changes incompatibly.")
    hypernet: HypernetConfig
    base: BaseFingerprint
    base_name: str = Field(default="", description="Human-readable name of the base model.")
    max_composed_chunks: int | None = Field(
        default=None,
        gt=0,
        description="Most chunks this checkpoint composes reliably, as measured; a longer document's adapter keeps "
        "its most salient chunks (d2l_rag.adapters.salience). None = no limit.",
    )
    training: dict[str, Any] = Field(default_factory=dict, description="Free-form notes: steps, data mix, losses.")


class LoadedHypernetwork:
    """A hypernetwork module with its config and a stable id (hash of the weights file)."""

    def __init__(self, network: Hypernetwork, config: CheckpointConfig, hypernet_id: str) -> None:
        self.network = network
        self.config = config
        self.id = hypernet_id

    @classmethod
    def fresh(cls, lm: FrozenLM, config: HypernetConfig, seed: int = 0) -> LoadedHypernetwork:
        """An untrained hypernetwork (an exact no-op) for `lm`, e.g. for tests or as a training start."""
        torch.manual_seed(seed)
        network = build_hypernetwork(lm, config).to(lm.device).eval().requires_grad_(False)
        ckpt = CheckpointConfig(hypernet=config, base=lm.fingerprint, base_name=lm.name)
        return cls(network, ckpt, weights_id(network))


def weights_id(network: Hypernetwork) -> str:
    """16 hex digits of sha256 over the weights as saved in bf16 (what `load_checkpoint` hashes)."""
    from safetensors.torch import save

    state = {k: v.detach().to("cpu", torch.bfloat16).contiguous() for k, v in network.state_dict().items()}
    return _blob_id(save(state))


def _blob_id(blob: bytes) -> str:
    """A checkpoint's id: 16 hex digits of the sha256 of its weights file's bytes (one definition for every reader)."""
    return hashlib.sha256(blob).hexdigest()[:16]


def build_hypernetwork(lm: FrozenLM, config: HypernetConfig) -> Hypernetwork:
    """A fresh (untrained, exact no-op) hypernetwork sized for `lm`."""
    modules = find_target_modules(lm.model, config.target_modules)
    shapes = {name: TargetShape(d_in=mods[0].in_features, d_out=mods[0].out_features) for name, mods in modules.items()}
    return Hypernetwork(config, lm.num_layers, lm.model.config.hidden_size, shapes)


def _check_base(expected: BaseFingerprint, actual: BaseFingerprint, where: Path) -> None:
    diffs = [
        f"{field}: checkpoint has {getattr(expected, field)!r}, base model has {getattr(actual, field)!r}"
        for field in type(expected).model_fields
        if getattr(expected, field) != getattr(actual, field)
    ]
    if diffs:
        raise CheckpointMismatchError(
            f"checkpoint {where} was trained for base {expected.id} but the loaded base model is {actual.id}: "
            + "; ".join(diffs)
        )


def save_checkpoint(
    network: Hypernetwork,
    lm: FrozenLM,
    directory: str | Path,
    training: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Write weights (bf16 by default, to keep the shipped file small) and config atomically."""
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in network.state_dict().items()}
    config = CheckpointConfig(hypernet=network.config, base=lm.fingerprint, base_name=lm.name, training=training or {})
    return write_checkpoint(state, config, directory)


def write_checkpoint(state: dict[str, torch.Tensor], config: CheckpointConfig, directory: str | Path) -> Path:
    """Write weights and config into `directory` atomically: a reader sees the old pair or the new, never a mix."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        save_file(state, os.path.join(tmp, WEIGHTS_NAME))
        Path(tmp, CONFIG_NAME).write_text(config.model_dump_json(indent=2))
        os.replace(os.path.join(tmp, WEIGHTS_NAME), directory / WEIGHTS_NAME)
        os.replace(os.path.join(tmp, CONFIG_NAME), directory / CONFIG_NAME)
    return directory


def read_checkpoint_config(directory: str | Path) -> CheckpointConfig:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise D2LError(f"{path} not found: a checkpoint is a directory with {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return CheckpointConfig.model_validate_json(path.read_bytes())  # bytes: invalid UTF-8 is a ValidationError
    except (ValidationError, OSError) as exc:
        raise D2LError(f"invalid checkpoint config {path}: {exc}") from exc


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _missing_weights_error(directory: Path) -> D2LError:
    """Name any pickle-format weights found instead, and say they are not loaded (they could run code)."""
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
    if pickles:
        return D2LError(
            f"{directory / WEIGHTS_NAME} not found; {directory} holds {', '.join(pickles)}, a pickle format that "
            f"d2l-rag will never unpickle (loading a pickle can run arbitrary code). Convert the weights to "
            f"safetensors with a trusted tool, e.g. safetensors.torch.save_file(state_dict, '{WEIGHTS_NAME}')"
        )
    return D2LError(f"{directory / WEIGHTS_NAME} not found")


def load_checkpoint(directory: str | Path, lm: FrozenLM) -> LoadedHypernetwork:
    """Load a checkpoint for `lm`; `CheckpointMismatchError` if it was trained for another base model."""
    directory = Path(directory)
    config = read_checkpoint_config(directory)
    _check_base(config.base, lm.fingerprint, directory)
    state, hypernet_id = read_weights(directory)
    network = build_hypernetwork(lm, config.hypernet)
    try:
        network.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise CheckpointMismatchError(f"{directory / WEIGHTS_NAME} does not match its config: {exc}") from exc
    network.to(lm.device).eval().requires_grad_(False)
    return LoadedHypernetwork(network, config, hypernet_id)


def read_weights(directory: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """A checkpoint's tensors as stored and its id: 16 hex digits of the weights file's sha256."""
    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file():
        raise _missing_weights_error(Path(directory))
    blob = weights.read_bytes()  # parsed and hashed from the same bytes, so the id is the id of these weights
    try:
        state = load(blob)
    except (SafetensorError, OSError, ValueError) as exc:
        raise D2LError(f"{weights} is not a valid safetensors file: {exc}") from exc
    return state, _blob_id(blob)
