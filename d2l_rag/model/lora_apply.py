"""Functional LoRA: add `scale * (x @ A^T) @ B^T` per batch row through forward hooks, never touching W.

The hooks live only inside the `apply_lora` context manager and are removed in `finally`, so an exception
anywhere leaves the model exactly as it was (peft's `_enable_peft_forward_hooks` idea). Each batch row has
its own A and B (peft's `_mixed_batch_forward`, vectorised): one batch can mix documents.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from d2l_rag.errors import D2LError, InvalidInputError
from d2l_rag.model.targets import find_target_modules

__all__ = ["LoraBatch", "apply_lora", "lora_delta"]

# target name -> (A: (batch, layers, rank, d_in), B: (batch, layers, d_out, rank))
LoraBatch = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


class _ModelGuard:
    """Serialises adapter application on one model across threads and rejects nesting within a thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None


# Locks keyed weakly by model: synchronisation only, no model state.
_GUARDS: weakref.WeakKeyDictionary[nn.Module, _ModelGuard] = weakref.WeakKeyDictionary()
_GUARDS_LOCK = threading.Lock()


def _guard_for(model: nn.Module) -> _ModelGuard:
    with _GUARDS_LOCK:
        guard = _GUARDS.get(model)
        if guard is None:
            guard = _GUARDS[model] = _ModelGuard()
        return guard


def lora_delta(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-row LoRA delta. x: (batch, T, d_in), a: (batch, r, d_in), b: (batch, d_out, r) -> (batch, T, d_out)."""
    h = torch.bmm(x, a.transpose(1, 2))  # (batch, T, r)
    return torch.bmm(h, b.transpose(1, 2)) * scale  # (batch, T, d_out)


def _check_batch(weights: LoraBatch, targets: Mapping[str, list[nn.Linear]]) -> int:
    batch_sizes = set()
    for name, (a, b) in weights.items():
        modules = targets[name]
        layers, d_in, d_out = len(modules), modules[0].in_features, modules[0].out_features
        if a.dim() != 4 or b.dim() != 4:
            raise InvalidInputError(
                f"{name}: A and B must be 4-D (batch, layers, ...), got {a.dim()}-D and {b.dim()}-D"
            )
        if a.shape[1] != layers or a.shape[3] != d_in:
            raise InvalidInputError(f"{name}: A has shape {tuple(a.shape)}, expected (batch, {layers}, rank, {d_in})")
        if b.shape[1] != layers or b.shape[2] != d_out or b.shape[3] != a.shape[2] or b.shape[0] != a.shape[0]:
            raise InvalidInputError(
                f"{name}: B has shape {tuple(b.shape)}, expected ({a.shape[0]}, {layers}, {d_out}, {a.shape[2]})"
            )
        batch_sizes.add(a.shape[0])
    if len(batch_sizes) > 1:
        raise InvalidInputError(f"all targets need the same batch size, got {sorted(batch_sizes)}")
    return batch_sizes.pop() if batch_sizes else 0


@contextmanager
def apply_lora(model: nn.Module, weights: LoraBatch, scale: float = 1.0) -> Iterator[None]:
    """Within the block, every forward of `model` adds row i's LoRA to row i of the batch.

    The forward's batch size must equal the adapters' batch size (checked in the hook, with both numbers).
    Concurrent threads wait for each other; nesting in one thread is an error (the deltas would add twice).
    """
    targets = find_target_modules(model, list(weights))
    batch = _check_batch(weights, targets)
    guard = _guard_for(model)
    me = threading.get_ident()
    if guard.owner == me:
        raise D2LError("apply_lora is already active on this model in this thread; compose adapters instead")
    with guard.lock:
        guard.owner = me
        handles = []
        try:
            for name, (a_all, b_all) in weights.items():
                for layer, module in enumerate(targets[name]):
                    hook = _make_hook(a_all[:, layer], b_all[:, layer], scale, batch, me)
                    handles.append(module.register_forward_hook(hook))
            yield
        finally:
            for handle in handles:
                handle.remove()
            guard.owner = None


def _make_hook(a: torch.Tensor, b: torch.Tensor, scale: float, batch: int, owner: int):
    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        if threading.get_ident() != owner:  # another thread's forward (no adapter, or encoding) sees the bare model
            return output
        x = args[0]
        if x.shape[0] != batch:
            raise InvalidInputError(f"forward batch has {x.shape[0]} rows but {batch} adapters were given")
        shape = x.shape
        x3 = x.reshape(shape[0], -1, shape[-1])  # (batch, T, d_in)
        delta = lora_delta(x3, a.to(x.dtype), b.to(x.dtype), scale)
        return output + delta.reshape(*shape[:-1], delta.shape[-1]).to(output.dtype)

    return hook
