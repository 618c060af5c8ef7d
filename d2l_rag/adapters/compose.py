"""Composition is concatenation along rank: the delta of the result is the sum of the parts' deltas.

`B1 @ A1 + B2 @ A2 == [B1 B2] @ [A1; A2]`, so a document of n chunks has rank n*r, several documents compose
the same way, and appending new chunks to a document never re-encodes the old ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.errors import InvalidInputError

__all__ = ["compose", "split_chunk_loras", "stack_for_batch"]


def compose(adapters: Sequence[DocumentAdapter], doc_ids: Sequence[str] | None = None) -> DocumentAdapter:
    """One adapter whose delta is the sum of all `adapters`' deltas."""
    if not adapters:
        raise InvalidInputError("compose needs at least one adapter")
    first = adapters[0]
    for other in adapters[1:]:
        first.check_compatible(other)
    weights = {
        name: (
            torch.cat([ad.weights[name][0] for ad in adapters], dim=1),  # (L, sum r, d_in)
            torch.cat([ad.weights[name][1] for ad in adapters], dim=2),  # (L, d_out, sum r)
        )
        for name in first.target_modules
    }
    ids = tuple(doc_ids) if doc_ids is not None else tuple(i for ad in adapters for i in ad.doc_ids)
    return replace(
        first,
        weights=weights,
        doc_ids=ids,
        chunk_count=sum(ad.chunk_count for ad in adapters),
        token_count=sum(ad.token_count for ad in adapters),
        source_sha256="" if len(adapters) > 1 else first.source_sha256,
        metadata={},
    )


def split_chunk_loras(
    loras: dict[str, tuple[torch.Tensor, torch.Tensor]], chunk_counts: Sequence[int]
) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Group per-chunk LoRAs (N, L, r, ...) into per-document weights (L, n_i*r, ...), chunks in order."""
    total = sum(chunk_counts)
    out: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = [{} for _ in chunk_counts]
    for name, (a, b) in loras.items():
        if a.shape[0] != total:
            raise InvalidInputError(f"{a.shape[0]} chunk LoRAs for chunk counts summing to {total}")
        start = 0
        for i, n in enumerate(chunk_counts):
            a_doc, b_doc = a[start : start + n], b[start : start + n]  # (n, L, r, d_in), (n, L, d_out, r)
            N, L, r, d_in = a_doc.shape
            out[i][name] = (
                a_doc.permute(1, 0, 2, 3).reshape(L, N * r, d_in),
                b_doc.permute(1, 2, 0, 3).reshape(L, b_doc.shape[2], N * r),
            )
            start += n
    return out


def stack_for_batch(
    weights: Sequence[dict[str, tuple[torch.Tensor, torch.Tensor]] | None],
    like: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-row weights (None = no adapter) -> batched (batch, L, R_max, ...) zero-padded on rank.

    Zero rows of A and zero columns of B add nothing, so padding never changes a row's output.
    """
    template = like or next((w for w in weights if w is not None), None)
    if template is None:
        raise InvalidInputError("stack_for_batch needs at least one adapter (or `like`) to know the shapes")
    batched: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, (a0, b0) in template.items():
        L, _, d_in = a0.shape
        d_out = b0.shape[1]
        r_max = max((w[name][0].shape[1] for w in weights if w is not None), default=1)
        a = a0.new_zeros(len(weights), L, r_max, d_in)
        b = b0.new_zeros(len(weights), L, d_out, r_max)
        for i, w in enumerate(weights):
            if w is None:
                continue
            ai, bi = w[name]
            a[i, :, : ai.shape[1]] = ai
            b[i, :, :, : bi.shape[2]] = bi
        batched[name] = (a, b)
    return batched
