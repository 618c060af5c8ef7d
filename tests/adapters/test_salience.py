"""Salient chunks: exact per-chunk delta norms, and a capped document keeps its loudest chunks in order."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from d2l_rag.adapters import AdapterBuilder, compose
from d2l_rag.adapters.salience import chunk_delta_norms, keep_salient_chunks
from d2l_rag.config import HypernetConfig, InternalizerConfig
from d2l_rag.errors import InvalidInputError
from d2l_rag.model import LoadedHypernetwork
from d2l_rag.model.checkpoint import weights_id
from d2l_rag.testing import random_adapter

RANK = 3


def _chunks(tiny_lm, loudness: list[float]):
    """A 'document' of one chunk per entry, each chunk's B scaled by its loudness."""
    parts = []
    for i, loud in enumerate(loudness):
        part = random_adapter(tiny_lm, RANK, seed=i)
        a, b = part.weights["mlp.down_proj"]
        parts.append(replace(part, weights={"mlp.down_proj": (a, b * loud)}))
    return compose(parts)


def _delta(adapter):
    a, b = adapter.weights["mlp.down_proj"]
    return b @ a  # (L, d_out, d_in)


def test_norms_are_the_frobenius_norms_of_each_chunks_delta(tiny_lm):
    doc = _chunks(tiny_lm, [1.0, 0.2, 3.0])
    a, b = doc.weights["mlp.down_proj"]
    expected = [
        torch.linalg.matrix_norm(b[:, :, i * RANK : (i + 1) * RANK] @ a[:, i * RANK : (i + 1) * RANK]).norm()
        for i in range(3)
    ]
    torch.testing.assert_close(chunk_delta_norms(doc, RANK), torch.stack(expected), rtol=1e-4, atol=1e-4)


def test_keeps_the_loudest_chunks_in_document_order(tiny_lm):
    loudness = [1.0, 5.0, 0.1, 4.0, 0.3]
    doc = _chunks(tiny_lm, loudness)
    kept = keep_salient_chunks(doc, keep=2, chunk_rank=RANK)
    only = _chunks(tiny_lm, [0.0, 5.0, 0.0, 4.0, 0.0])
    assert kept.rank == 2 * RANK and kept.metadata["chunks_composed"] == "2 of 5"
    torch.testing.assert_close(_delta(kept), _delta(only), rtol=1e-5, atol=1e-5)  # chunks 1 and 3, nothing else
    assert kept.chunk_count == doc.chunk_count and kept.doc_ids == doc.doc_ids
    assert keep_salient_chunks(doc, keep=5, chunk_rank=RANK) is doc


def test_bad_keep_or_rank_is_refused(tiny_lm):
    doc = _chunks(tiny_lm, [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="keep must be > 0"):
        keep_salient_chunks(doc, keep=0, chunk_rank=RANK)
    with pytest.raises(InvalidInputError, match="not a multiple of the chunk rank"):
        keep_salient_chunks(doc, keep=1, chunk_rank=4)


def _hypernet(tiny_lm, config: HypernetConfig, cap: int | None) -> LoadedHypernetwork:
    fresh = LoadedHypernetwork.fresh(tiny_lm, config)
    torch.manual_seed(3)
    with torch.no_grad():
        fresh.network.out_scale.normal_()
    ckpt = fresh.config.model_copy(update={"max_composed_chunks": cap})
    return LoadedHypernetwork(fresh.network, ckpt, weights_id(fresh.network))


def test_builder_caps_documents_at_the_checkpoints_limit_unless_told_otherwise(tiny_lm, tiny_hypernet_config):
    text = "The access code for the Tessary vault is KX-4821-Q. " * 6  # 312 tokens: 5 chunks of 64
    r = tiny_hypernet_config.rank
    capped = AdapterBuilder(tiny_lm, _hypernet(tiny_lm, tiny_hypernet_config, cap=2))
    adapter = capped.build(text, doc_id="vault")
    assert adapter.rank == 2 * r and adapter.chunk_count == 5 and adapter.metadata["chunks_composed"] == "2 of 5"
    full = AdapterBuilder(tiny_lm, _hypernet(tiny_lm, tiny_hypernet_config, cap=2), max_chunks=0).build(text)
    assert full.rank == 5 * r and "chunks_composed" not in full.metadata
    three = AdapterBuilder(tiny_lm, _hypernet(tiny_lm, tiny_hypernet_config, cap=None), max_chunks=3).build(text)
    assert three.rank == 3 * r
    expected = keep_salient_chunks(full, 2, r)
    torch.testing.assert_close(_delta(adapter), _delta(expected))
    with pytest.raises(ValueError, match="max_chunks must be >= 0"):
        AdapterBuilder(tiny_lm, _hypernet(tiny_lm, tiny_hypernet_config, cap=None), max_chunks=-1)


def test_internalizer_config_rejects_a_negative_cap():
    with pytest.raises(ValueError, match="max_composed_chunks"):
        InternalizerConfig(max_composed_chunks=-1)
