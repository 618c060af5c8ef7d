"""Salient chunks: past the number of chunks a hypernetwork composes reliably, keep the chunks that say most.

Rank-concatenated chunk LoRAs add their deltas. A checkpoint trained on documents of at most k chunks has never
seen the sum of 64 of them: on the shipped one, the deltas of 15 filler chunks (Frobenius norm ~12.5 each,
against ~21 for the chunk holding a needle) add up and drown the answer, which is exact up to 4 chunks and lost
from 16 on (docs/training.md). Keeping the k chunks with the largest deltas restores it. The choice is made when
the adapter is assembled, before any question, so what the dropped chunks hold is not internalized; the
adapter's metadata says how many chunks were kept.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.errors import InvalidInputError

__all__ = ["chunk_delta_norms", "keep_salient_chunks"]


def chunk_delta_norms(adapter: DocumentAdapter, chunk_rank: int) -> torch.Tensor:
    """Frobenius norm of each chunk's delta B_i A_i over all layers and targets: (chunks,).

    Exact and cheap: ||B A||^2 = sum((B^T B) * (A A^T)), two r x r Gram matrices per layer.
    """
    n = _chunk_count(adapter, chunk_rank)
    total = torch.zeros(n)
    for a, b in adapter.weights.values():  # (L, n*r, d_in), (L, d_out, n*r)
        a = a.float().reshape(a.shape[0], n, chunk_rank, a.shape[2])  # (L, n, r, d_in)
        b = b.float().reshape(b.shape[0], b.shape[1], n, chunk_rank).transpose(1, 2)  # (L, n, d_out, r)
        gram_a = a @ a.transpose(-1, -2)  # (L, n, r, r)
        gram_b = b.transpose(-1, -2) @ b  # (L, n, r, r)
        total += (gram_a * gram_b).sum(dim=(0, 2, 3)).cpu()
    return total.clamp_min(0).sqrt()


def keep_salient_chunks(adapter: DocumentAdapter, keep: int, chunk_rank: int) -> DocumentAdapter:
    """The adapter of the `keep` chunks with the largest deltas, in document order (unchanged if it has fewer)."""
    if keep <= 0:
        raise InvalidInputError(f"keep must be > 0, got {keep}")
    if _chunk_count(adapter, chunk_rank) <= keep:  # short documents, the common case: no norms to compute
        return adapter
    norms = chunk_delta_norms(adapter, chunk_rank)
    kept = norms.topk(keep).indices.sort().values
    columns = (kept[:, None] * chunk_rank + torch.arange(chunk_rank)).reshape(-1)
    weights = {}
    for name, (a, b) in adapter.weights.items():
        index = columns.to(a.device)
        weights[name] = (a.index_select(1, index), b.index_select(2, index))
    metadata = {**adapter.metadata, "chunks_composed": f"{keep} of {len(norms)}"}
    return replace(adapter, weights=weights, metadata=metadata)


def _chunk_count(adapter: DocumentAdapter, chunk_rank: int) -> int:
    if chunk_rank <= 0 or adapter.rank % chunk_rank:
        raise InvalidInputError(f"adapter rank {adapter.rank} is not a multiple of the chunk rank {chunk_rank}")
    return adapter.rank // chunk_rank
