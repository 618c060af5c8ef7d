"""Hypernetwork checkpoints: bf16 round trip, stable id, and refusal on another base model."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from d2l_rag.config import HypernetConfig
from d2l_rag.errors import CheckpointMismatchError, D2LError
from d2l_rag.model import LoadedHypernetwork, encode_chunks, load_checkpoint, pad_chunks, save_checkpoint
from d2l_rag.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, weights_id
from d2l_rag.testing import tiny_llama

CONFIG = HypernetConfig(rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=64, bias_rank=1)


@pytest.fixture(scope="module")
def trained_like(tiny_lm):
    """A fresh network with every parameter randomised, standing in for a trained one."""
    net = LoadedHypernetwork.fresh(tiny_lm, CONFIG).network
    torch.manual_seed(11)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


@pytest.fixture(scope="module")
def activations(tiny_lm):
    ids, mask = pad_chunks([[10, 11, 12, 13, 14], [20, 21, 22]], tiny_lm.tokenizer.pad_token_id, tiny_lm.device)
    return encode_chunks(tiny_lm.model, ids, mask), mask


def _bf16_rounded(net):
    rounded = copy.deepcopy(net)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return rounded


def test_bf16_round_trip_gives_identical_outputs(tmp_path, tiny_lm, trained_like, activations):
    save_checkpoint(trained_like, tiny_lm, tmp_path, training={"steps": 3})
    loaded = load_checkpoint(tmp_path, tiny_lm)
    assert loaded.config.hypernet == CONFIG
    assert loaded.config.base == tiny_lm.fingerprint
    assert loaded.config.training == {"steps": 3}
    expected = _bf16_rounded(trained_like)(*activations)
    got = loaded.network(*activations)
    for name in expected:
        assert torch.equal(got[name][0], expected[name][0])
        assert torch.equal(got[name][1], expected[name][1])
        assert got[name][1].abs().max() > 1e-2
    assert torch.equal(
        loaded.network.bias_lora()["mlp.down_proj"][1], _bf16_rounded(trained_like).bias_lora()["mlp.down_proj"][1]
    )
    assert not any(p.requires_grad for p in loaded.network.parameters())


def test_fp32_round_trip_is_exact(tmp_path, tiny_lm, trained_like, activations):
    save_checkpoint(trained_like, tiny_lm, tmp_path, dtype=torch.float32)
    loaded = load_checkpoint(tmp_path, tiny_lm)
    for key, value in trained_like.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value), key


def test_loaded_id_is_the_hash_of_the_saved_weights(tmp_path, tiny_lm, trained_like):
    save_checkpoint(trained_like, tiny_lm, tmp_path)
    assert load_checkpoint(tmp_path, tiny_lm).id == weights_id(trained_like)
    fresh = LoadedHypernetwork.fresh(tiny_lm, CONFIG)
    assert fresh.id != weights_id(trained_like)
    assert LoadedHypernetwork.fresh(tiny_lm, CONFIG).id == fresh.id  # seeded, so the same no-op network


def test_loading_on_another_base_names_both_fingerprints(tmp_path, tiny_lm, trained_like):
    save_checkpoint(trained_like, tiny_lm, tmp_path)
    other = tiny_llama(num_layers=3)
    pattern = (
        rf"trained for base {tiny_lm.fingerprint.id} but the loaded base model is {other.fingerprint.id}.*num_layers"
    )
    with pytest.raises(CheckpointMismatchError, match=pattern):
        load_checkpoint(tmp_path, other)


def test_missing_or_corrupt_files_raise_d2l_error(tmp_path, tiny_lm, trained_like):
    with pytest.raises(D2LError, match=r"config\.json not found"):
        load_checkpoint(tmp_path / "nowhere", tiny_lm)
    save_checkpoint(trained_like, tiny_lm, tmp_path)
    weights = tmp_path / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(D2LError, match="is not a valid safetensors file"):
        load_checkpoint(tmp_path, tiny_lm)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    config["hypernet"]["rank"] = 0
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(D2LError, match="invalid checkpoint config"):
        load_checkpoint(tmp_path, tiny_lm)


def test_weights_that_do_not_fit_the_config_are_a_mismatch(tmp_path, tiny_lm, trained_like):
    save_checkpoint(trained_like, tiny_lm, tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    config["hypernet"]["width"] = 64
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match="does not match its config"):
        load_checkpoint(tmp_path, tiny_lm)
