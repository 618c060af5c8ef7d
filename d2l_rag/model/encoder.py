"""The chunk encoder: the frozen base model's per-layer activations over a batch of token chunks."""

from __future__ import annotations

import torch
from torch import nn

from d2l_rag.model.device_copy import to_device

__all__ = ["encode_chunks", "pad_chunks"]


def pad_chunks(chunks: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token chunks into (ids, mask), both (N, T_max)."""
    if not chunks or any(len(c) == 0 for c in chunks):
        raise ValueError("every chunk needs at least one token")
    longest = max(len(c) for c in chunks)
    ids = torch.full((len(chunks), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunks), longest), dtype=torch.long)
    for i, chunk in enumerate(chunks):
        ids[i, : len(chunk)] = torch.tensor(chunk, dtype=torch.long)
        mask[i, : len(chunk)] = 1
    return to_device(ids, device), to_device(mask, device)


@torch.no_grad()
def encode_chunks(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state after every decoder layer: (layers, N, T, hidden).

    Runs the backbone only (no LM head: the 49k-vocab projection would be most of the cost for a small model).
    Padding positions hold garbage; the hypernetwork masks them with `attention_mask`.
    """
    backbone = getattr(model, model.base_model_prefix, model)
    out = backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
    return torch.stack(out.hidden_states[1:], dim=0)  # (L, N, T, H); [0] is the embedding output
