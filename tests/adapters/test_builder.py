"""Text -> adapter: a fresh hypernetwork is an exact no-op; counts, extension and batching are consistent."""

from __future__ import annotations

import hashlib

import pytest
import torch

from d2l_rag.adapters import AdapterBuilder, compose, stack_for_batch
from d2l_rag.config import HypernetConfig
from d2l_rag.errors import AdapterMismatchError, InvalidInputError
from d2l_rag.model import LoadedHypernetwork, apply_lora
from d2l_rag.model.checkpoint import weights_id

TEXT_A = "The access code for the Tessary vault is KX-4821-Q. " * 3  # 156 characters = tokens
TEXT_B = "Mira Oden was born in Velport in 1931 and kept bees. " * 2  # 106 characters


def _randomised(tiny_lm, config: HypernetConfig, seed: int = 5) -> LoadedHypernetwork:
    """A fresh hypernetwork with non-zero output scalers (B != 0), standing in for a trained one."""
    hypernet = LoadedHypernetwork.fresh(tiny_lm, config)
    torch.manual_seed(seed)
    with torch.no_grad():
        hypernet.network.out_scale.normal_()
        if config.bias_rank:
            for p in hypernet.network.bias_b.values():
                p.normal_()
    return LoadedHypernetwork(hypernet.network, hypernet.config, weights_id(hypernet.network))  # id of new weights


@pytest.fixture(scope="module")
def builder(tiny_lm, tiny_hypernet_config) -> AdapterBuilder:
    return AdapterBuilder(tiny_lm, _randomised(tiny_lm, tiny_hypernet_config))


@torch.no_grad()
def _logits(lm, ids: torch.Tensor, adapter=None) -> torch.Tensor:
    if adapter is None:
        return lm.model(input_ids=ids).logits
    with apply_lora(lm.model, stack_for_batch([adapter.weights]), scale=adapter.scale):
        return lm.model(input_ids=ids).logits


def test_fresh_hypernetwork_adapter_gives_exactly_the_base_logits(tiny_lm, tiny_hypernet):
    adapter = AdapterBuilder(tiny_lm, tiny_hypernet).build(TEXT_A, doc_id="vault")
    assert adapter.chunk_count == 3 and adapter.rank == 3 * 4
    a, b = adapter.weights["mlp.down_proj"]
    assert torch.count_nonzero(b) == 0
    assert a.abs().max() > 0  # A is random: only the zero-initialised output scale makes this a no-op
    ids = torch.tensor([tiny_lm.tokenizer("What is the access code?")["input_ids"]])
    assert torch.equal(_logits(tiny_lm, ids, adapter), _logits(tiny_lm, ids))


def test_build_records_counts_and_provenance(tiny_lm, builder):
    adapter = builder.build(TEXT_A, doc_id="vault")
    assert adapter.chunk_count == 3  # 156 tokens in chunks of 64
    assert adapter.token_count == len(TEXT_A)
    assert adapter.rank == 12
    assert adapter.doc_ids == ("vault",)
    assert adapter.source_sha256 == hashlib.sha256(TEXT_A.encode()).hexdigest()
    assert adapter.base_fingerprint == tiny_lm.fingerprint.id
    assert adapter.hypernet_id == builder.hypernet.id
    assert adapter.scale == builder.hypernet.config.hypernet.lora_scale
    assert adapter.weights["mlp.down_proj"][0].shape == (2, 12, 128)
    assert adapter.weights["mlp.down_proj"][1].shape == (2, 64, 12)
    assert builder.build("short").doc_ids == ()


def test_chunk_tokens_override(tiny_lm, builder):
    small = AdapterBuilder(tiny_lm, builder.hypernet, chunk_tokens=50)
    assert [len(c) for c in small.chunks(TEXT_A)] == [50, 50, 50, 6]
    assert small.build(TEXT_A).rank == 16


def test_extend_equals_compose_of_the_two_builds(tiny_lm, builder):
    a = builder.build(TEXT_A, doc_id="doc")
    b = builder.build(TEXT_B)
    extended = builder.extend(a, TEXT_B)
    assert extended.rank == a.rank + b.rank == 12 + 8
    assert extended.chunk_count == a.chunk_count + b.chunk_count == 5
    assert extended.token_count == len(TEXT_A) + len(TEXT_B)
    assert extended.doc_ids == ("doc",)
    assert extended.source_sha256 not in ("", a.source_sha256)
    reference = compose([a, b])
    for name, (ra, rb) in reference.weights.items():
        torch.testing.assert_close(extended.weights[name][0], ra, atol=1e-6, rtol=0)
        torch.testing.assert_close(extended.weights[name][1], rb, atol=1e-6, rtol=0)
    ids = torch.tensor([tiny_lm.tokenizer("Who kept bees?")["input_ids"]])
    logits = _logits(tiny_lm, ids, extended)
    torch.testing.assert_close(logits, _logits(tiny_lm, ids, reference), atol=1e-5, rtol=0)
    assert (logits - _logits(tiny_lm, ids, a)).abs().max() > 1e-3  # the new text did change the adapter


def test_extend_refuses_an_adapter_of_another_hypernetwork(tiny_lm, tiny_hypernet, builder):
    foreign = AdapterBuilder(tiny_lm, tiny_hypernet).build(TEXT_A)
    with pytest.raises(AdapterMismatchError, match=rf"{foreign.hypernet_id} vs {builder.hypernet.id}"):
        builder.extend(foreign, TEXT_B)


def test_batch_size_does_not_change_the_adapter(tiny_lm, builder):
    one = AdapterBuilder(tiny_lm, builder.hypernet, batch_chunks=1).build(TEXT_A + TEXT_B)
    many = AdapterBuilder(tiny_lm, builder.hypernet, batch_chunks=8).build(TEXT_A + TEXT_B)
    assert one.rank == many.rank == 20
    for name in one.weights:
        torch.testing.assert_close(one.weights[name][1], many.weights[name][1], atol=1e-5, rtol=0)
        torch.testing.assert_close(one.weights[name][0], many.weights[name][0], atol=1e-5, rtol=0)


def test_cpu_batches_hold_chunks_of_one_length(tiny_lm, builder, monkeypatch):
    """On CPU compute grows with padded tokens, so a short tail chunk is encoded on its own, not padded."""
    import d2l_rag.adapters.builder as builder_module

    shapes: list[tuple[int, int, bool]] = []
    pad_chunks = builder_module.pad_chunks

    def spy(chunks, pad_id, device):
        ids, mask = pad_chunks(chunks, pad_id, device)
        shapes.append((*ids.shape, bool(mask.all())))
        return ids, mask

    monkeypatch.setattr(builder_module, "pad_chunks", spy)
    adapter = AdapterBuilder(tiny_lm, builder.hypernet, batch_chunks=8).build(TEXT_A + TEXT_B)  # 262 tokens
    assert adapter.chunk_count == 5
    assert shapes == [(4, 64, True), (1, 6, True)]


def test_progress_reports_every_batch(tiny_lm, builder):
    calls: list[tuple[int, int]] = []
    AdapterBuilder(tiny_lm, builder.hypernet, batch_chunks=2).build(
        TEXT_A + TEXT_B, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_bias_lora_is_added_once_per_document(tiny_lm):
    config = HypernetConfig(rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=64, bias_rank=2)
    hypernet = _randomised(tiny_lm, config)
    adapter = AdapterBuilder(tiny_lm, hypernet).build(TEXT_A)
    assert adapter.rank == 3 * 4 + 2
    assert adapter.chunk_count == 3
    bias_a, bias_b = hypernet.network.bias_lora()["mlp.down_proj"]
    assert torch.equal(adapter.weights["mlp.down_proj"][0][:, -2:], bias_a[0])
    assert torch.equal(adapter.weights["mlp.down_proj"][1][:, :, -2:], bias_b[0])


@pytest.mark.parametrize("text", ["", "  \n"])
def test_empty_text_is_rejected(builder, text):
    with pytest.raises(InvalidInputError, match="empty or whitespace only"):
        builder.build(text)
