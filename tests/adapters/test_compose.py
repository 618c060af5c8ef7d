"""Composition is rank concatenation: the composed delta is the sum of the parts' deltas."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from d2l_rag.adapters import DocumentAdapter, compose, split_chunk_loras, stack_for_batch
from d2l_rag.errors import AdapterMismatchError, InvalidInputError
from d2l_rag.model import apply_lora
from d2l_rag.testing import merged_copy, random_adapter


def test_composed_delta_is_the_sum_of_deltas(tiny_lm):
    first, second = random_adapter(tiny_lm, 3, seed=1), random_adapter(tiny_lm, 6, seed=2)
    both = compose([first, second])
    assert both.rank == 9
    assert both.doc_ids == ("doc1", "doc2")
    assert both.chunk_count == 2 and both.token_count == 20
    assert both.source_sha256 == ""  # no single source text any more
    for layer in range(2):
        expected = first.delta_weight("mlp.down_proj", layer) + second.delta_weight("mlp.down_proj", layer)
        torch.testing.assert_close(both.delta_weight("mlp.down_proj", layer), expected, atol=1e-5, rtol=0)


def test_composed_logits_equal_the_merged_sum(tiny_lm):
    first, second = random_adapter(tiny_lm, 3, seed=1), random_adapter(tiny_lm, 6, seed=2)
    both = compose([first, second], doc_ids=["a", "b"])
    assert both.doc_ids == ("a", "b")
    ids = torch.randint(4, len(tiny_lm.tokenizer), (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), apply_lora(tiny_lm.model, stack_for_batch([both.weights]), scale=both.scale):
        functional = tiny_lm.model(input_ids=ids).logits
    with torch.no_grad():
        merged = merged_copy(tiny_lm, first, second)(input_ids=ids).logits
        only_first = merged_copy(tiny_lm, first)(input_ids=ids).logits
    torch.testing.assert_close(functional, merged, atol=1e-5, rtol=0)
    assert (functional - only_first).abs().max() > 1e-2


def test_compose_of_one_is_the_adapter(tiny_lm):
    adapter = random_adapter(tiny_lm, 3, seed=1)
    alone = compose([adapter])
    assert torch.equal(alone.weights["mlp.down_proj"][0], adapter.weights["mlp.down_proj"][0])
    assert alone.source_sha256 == adapter.source_sha256


def test_compose_refuses_incompatible_adapters(tiny_lm):
    adapter = random_adapter(tiny_lm, 3, seed=1)
    with pytest.raises(InvalidInputError, match="at least one adapter"):
        compose([])
    other_base = replace(adapter, base_fingerprint="feedfacefeedface")
    with pytest.raises(AdapterMismatchError, match=rf"{adapter.base_fingerprint} vs feedfacefeedface"):
        compose([adapter, other_base])
    with pytest.raises(AdapterMismatchError, match="different hypernetworks: test vs other"):
        compose([adapter, random_adapter(tiny_lm, 3, seed=2, hypernet_id="other")])
    with pytest.raises(AdapterMismatchError, match="different targets/scale"):
        compose([adapter, random_adapter(tiny_lm, 3, seed=2, scale=2.0)])


def test_split_chunk_loras_groups_chunks_in_order():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 2, 3, 7, generator=g), torch.randn(5, 2, 4, 3, generator=g)  # 5 chunks, 2 layers, r=3
    docs = split_chunk_loras({"t": (a, b)}, [2, 3])
    a1, b1 = docs[1]["t"]
    assert a1.shape == (2, 9, 7) and b1.shape == (2, 4, 9)
    assert torch.equal(a1[:, 3:6], a[3])  # chunk 1 of document 1 is chunk 3 overall
    assert torch.equal(b1[:, :, 3:6], b[3])
    # Concatenation keeps the delta: sum over chunks of B_c @ A_c.
    torch.testing.assert_close(b1[0] @ a1[0], sum(b[c, 0] @ a[c, 0] for c in (2, 3, 4)), atol=1e-5, rtol=0)
    with pytest.raises(InvalidInputError, match="5 chunk LoRAs for chunk counts summing to 4"):
        split_chunk_loras({"t": (a, b)}, [2, 2])


def test_stack_for_batch_pads_ranks_with_zeros(tiny_lm):
    small, big = random_adapter(tiny_lm, 2, seed=1), random_adapter(tiny_lm, 5, seed=2)
    a, b = stack_for_batch([small.weights, None, big.weights])["mlp.down_proj"]
    assert a.shape == (3, 2, 5, 128) and b.shape == (3, 2, 64, 5)
    assert torch.equal(a[0, :, :2], small.weights["mlp.down_proj"][0])
    assert torch.count_nonzero(a[0, :, 2:]) == 0 and torch.count_nonzero(b[0, :, :, 2:]) == 0
    assert torch.count_nonzero(a[1]) == 0 and torch.count_nonzero(b[1]) == 0
    with pytest.raises(InvalidInputError, match="at least one adapter"):
        stack_for_batch([None, None])


def test_adapter_validates_shapes_and_is_immutable(tiny_lm):
    a, b = random_adapter(tiny_lm, 3, seed=1).weights["mlp.down_proj"]
    with pytest.raises(InvalidInputError, match=r"A \(2, 3, 128\) and B \(2, 64, 4\)"):
        DocumentAdapter(
            weights={"mlp.down_proj": (a, b[..., :1].repeat(1, 1, 4))}, base_fingerprint="x", hypernet_id="y"
        )
    with pytest.raises(InvalidInputError, match="at least one target module"):
        DocumentAdapter(weights={}, base_fingerprint="x", hypernet_id="y")
    adapter = DocumentAdapter(weights={"mlp.down_proj": (a, b)}, base_fingerprint="x", hypernet_id="y")
    with pytest.raises(TypeError):
        adapter.weights["mlp.up_proj"] = (a, b)  # read-only mapping
    assert adapter.nbytes == (a.numel() + b.numel()) * 4
    assert adapter.to(dtype=torch.bfloat16).weights["mlp.down_proj"][0].dtype == torch.bfloat16
