"""The Perceiver hypernetwork: size for SmolLM2, output shapes, padding invariance, and a no-op when fresh."""

from __future__ import annotations

import pytest
import torch

from d2l_rag.config import HypernetConfig
from d2l_rag.model import Hypernetwork, LoadedHypernetwork, TargetShape, encode_chunks, pad_chunks, tokenize_document

# SmolLM2-135M: 30 layers, hidden 576, mlp.down_proj maps 1536 -> 576.
SMOLLM2 = {"num_layers": 30, "hidden_size": 576, "targets": {"mlp.down_proj": TargetShape(d_in=1536, d_out=576)}}


def _randomised(tiny_lm, config: HypernetConfig, seed: int = 3) -> Hypernetwork:
    """A fresh network with non-zero output scalers, so B is non-zero and comparisons are meaningful."""
    net = LoadedHypernetwork.fresh(tiny_lm, config).network
    torch.manual_seed(seed)
    with torch.no_grad():
        net.out_scale.normal_()
        if config.bias_rank:
            for p in net.bias_b.values():
                p.normal_()
    return net


def _activations(tiny_lm, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    chunks = [tokenize_document(tiny_lm.tokenizer, t) for t in texts]
    ids, mask = pad_chunks(chunks, tiny_lm.tokenizer.pad_token_id, tiny_lm.device)
    return encode_chunks(tiny_lm.model, ids, mask), mask


def test_default_config_for_smollm2_is_at_most_25m_parameters():
    net = Hypernetwork(HypernetConfig(), **SMOLLM2)
    count = net.num_parameters()
    print(f"hypernetwork parameters, default HypernetConfig on SmolLM2-135M shapes: {count:,}")
    assert 1_000_000 < count <= 25_000_000
    assert count == sum(p.numel() for p in net.parameters())


def test_output_shapes_for_n_chunks(tiny_lm, tiny_hypernet):
    net = tiny_hypernet.network
    acts, mask = _activations(tiny_lm, ["first chunk", "a second, longer chunk", "third"])
    assert acts.shape == (2, 3, 22, 64)  # (layers, N, T_max, hidden)
    out = net(acts, mask)
    assert set(out) == {"mlp.down_proj"}
    a, b = out["mlp.down_proj"]
    assert a.shape == (3, 2, 4, 128)  # (N, layers, rank, d_in)
    assert b.shape == (3, 2, 64, 4)  # (N, layers, d_out, rank)
    assert torch.isfinite(a).all() and a.abs().max() > 0


def test_fresh_network_emits_exactly_zero_b_even_with_bias_rank(tiny_lm):
    config = HypernetConfig(rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=64, bias_rank=2)
    net = LoadedHypernetwork.fresh(tiny_lm, config).network
    acts, mask = _activations(tiny_lm, ["some document text", "more"])
    _, b = net(acts, mask)["mlp.down_proj"]
    assert torch.count_nonzero(b) == 0
    bias_a, bias_b = net.bias_lora()["mlp.down_proj"]
    assert bias_a.shape == (1, 2, 2, 128) and bias_b.shape == (1, 2, 64, 2)
    assert torch.count_nonzero(bias_b) == 0
    assert LoadedHypernetwork.fresh(tiny_lm, HypernetConfig(rank=4, width=32, num_heads=4)).network.bias_lora() is None


def test_appended_padding_does_not_change_a_chunks_lora(tiny_lm, tiny_hypernet_config):
    net = _randomised(tiny_lm, tiny_hypernet_config)
    acts, mask = _activations(tiny_lm, ["The vault code is KX-4821-Q."])
    L, N, _, H = acts.shape
    garbage = torch.randn(L, N, 9, H, generator=torch.Generator().manual_seed(0)) * 10
    padded_acts = torch.cat([acts, garbage], dim=2)
    padded_mask = torch.cat([mask, torch.zeros(N, 9, dtype=mask.dtype)], dim=1)
    (a1, b1), (a2, b2) = net(acts, mask)["mlp.down_proj"], net(padded_acts, padded_mask)["mlp.down_proj"]
    assert b1.abs().max() > 1e-2
    torch.testing.assert_close(a2, a1, atol=1e-5, rtol=0)
    torch.testing.assert_close(b2, b1, atol=1e-5, rtol=0)
    # The mask is what makes this hold: unmasked garbage changes the LoRA.
    _, b3 = net(padded_acts, torch.ones_like(padded_mask))["mlp.down_proj"]
    assert (b3 - b1).abs().max() > 1e-3


def test_chunk_lora_does_not_depend_on_its_batch_neighbours(tiny_lm, tiny_hypernet_config):
    net = _randomised(tiny_lm, tiny_hypernet_config)
    text = "The vault code is KX-4821-Q."
    alone = net(*_activations(tiny_lm, [text]))["mlp.down_proj"]
    batched = net(*_activations(tiny_lm, [text, "a much longer neighbour that forces padding " * 2]))["mlp.down_proj"]
    torch.testing.assert_close(batched[0][:1], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[1][:1], alone[1], atol=1e-5, rtol=0)


def test_wrong_activation_shape_is_rejected(tiny_lm, tiny_hypernet):
    with pytest.raises(ValueError, match=r"activations \(3, 1, 5, 64\) do not fit \(2, N, T, 64\)"):
        tiny_hypernet.network(torch.zeros(3, 1, 5, 64), torch.ones(1, 5))


def test_target_shapes_must_match_config():
    with pytest.raises(ValueError, match=r"shapes given for \['mlp.up_proj'\] but config targets \['mlp.down_proj'\]"):
        Hypernetwork(HypernetConfig(), 2, 64, {"mlp.up_proj": TargetShape(64, 128)})


def test_a_reread_attends_to_the_chunk_and_the_latents_together(tiny_lm, tiny_hypernet_config):
    config = tiny_hypernet_config.model_copy(update={"num_rereads": 2})
    net = _randomised(tiny_lm, config)
    plain = _randomised(tiny_lm, tiny_hypernet_config)
    assert all(block.norm_ctx is None for block in net.rereads)  # the chunk's keys are the first read's
    assert net.num_parameters() - plain.num_parameters() == sum(p.numel() for p in net.rereads.parameters()) > 0
    block, width, heads = net.rereads[0], config.width, config.num_heads
    torch.manual_seed(0)
    x = torch.randn(2, config.rank, width)
    shape = (2, heads, 5, width // heads)  # keys or values of 5 chunk tokens
    chunk_a, chunk_b = ((torch.randn(shape), torch.randn(shape)) for _ in "ab")
    seen = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    with torch.no_grad():
        assert (block(x, chunk_a, seen) - block(x, chunk_b, seen)).abs().max() > 1e-3  # it reads the chunk
        hidden = block(x, chunk_a, torch.zeros_like(seen))  # every chunk token masked: the latents are still keys
    assert torch.isfinite(hidden).all()
    # In the network: the re-reads move the LoRA, and padding stays invisible to them (the first read's mask).
    acts, mask = _activations(tiny_lm, ["The vault code is KX-4821-Q.", "Captain Ilse Varn sailed the Morrow."])
    with torch.no_grad():
        _, b = net(acts, mask)["mlp.down_proj"]
        without = _randomised(tiny_lm, config)
        for reread in without.rereads:
            reread.zero_residuals()
        assert (b - without(acts, mask)["mlp.down_proj"][1]).abs().max() > 1e-4
        L, N, _, H = acts.shape
        padded = torch.cat([acts, torch.randn(L, N, 5, H) * 10], dim=2)
        padded_mask = torch.cat([mask, torch.zeros(N, 5, dtype=mask.dtype)], dim=1)
        torch.testing.assert_close(net(padded, padded_mask)["mlp.down_proj"][1], b, atol=1e-5, rtol=0)


def test_a_checkpoint_with_rereads_round_trips(tiny_lm, tiny_hypernet_config, tmp_path):
    from d2l_rag.model.checkpoint import load_checkpoint, save_checkpoint

    net = _randomised(tiny_lm, tiny_hypernet_config.model_copy(update={"num_rereads": 1}))
    loaded = load_checkpoint(save_checkpoint(net, tiny_lm, tmp_path / "ckpt", dtype=torch.float32), tiny_lm)
    assert loaded.network.config.num_rereads == 1
    acts, mask = _activations(tiny_lm, ["The vault code is KX-4821-Q."])
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(acts, mask)["mlp.down_proj"][1], net(acts, mask)["mlp.down_proj"][1])


def test_a_rereads_softmax_over_chunk_and_latents_is_attention_over_both_concatenated():
    from d2l_rag.model.hypernetwork import _Attention

    torch.manual_seed(0)
    attn, heads, width = _Attention(32, 4), 4, 32
    x = torch.randn(3, 8, width)
    chunk = (torch.randn(3, heads, 6, width // heads), torch.randn(3, heads, 6, width // heads))
    mask = torch.ones(3, 1, 1, 6, dtype=torch.bool)
    mask[0, ..., 4:] = False  # a padded chunk
    k_self, v_self = attn.keys_values(x)
    keys_values = (torch.cat([chunk[0], k_self], dim=2), torch.cat([chunk[1], v_self], dim=2))
    joint_mask = torch.cat([mask, torch.ones(3, 1, 1, 8, dtype=torch.bool)], dim=-1)
    torch.testing.assert_close(attn.over_chunk_and_self(x, chunk, mask), attn(x, keys_values, joint_mask))
