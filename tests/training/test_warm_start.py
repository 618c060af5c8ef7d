"""Growing a trained hypernetwork (targets, rank, depth, re-reads): old LoRAs unchanged, the new starts as a no-op."""

from __future__ import annotations

import pytest
import torch

from d2l_rag.config import HypernetConfig
from d2l_rag.errors import InvalidInputError
from d2l_rag.model.checkpoint import build_hypernetwork, save_checkpoint
from d2l_rag.training.config import TrainConfig
from d2l_rag.training.trainer import Trainer
from d2l_rag.training.warm_start import warm_start

SMALL = HypernetConfig(rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=64)
GROWN = SMALL.model_copy(update={"target_modules": ("self_attn.o_proj", "mlp.down_proj")})


def _trained(tiny_lm) -> torch.nn.Module:
    """A small network whose output scalers are non-zero, so its LoRAs are not trivially zero."""
    torch.manual_seed(0)
    net = build_hypernetwork(tiny_lm, SMALL)
    with torch.no_grad():
        net.out_scale.normal_()
    return net


def _inputs(tiny_lm) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    hidden = tiny_lm.model.config.hidden_size
    return torch.randn(tiny_lm.num_layers, 2, 16, hidden), torch.ones(2, 16)


def _grown_by_training(tiny_lm, tmp_path, capsys, hypernet: HypernetConfig):
    """A Trainer started from a saved `_trained` network with config `hypernet`: (trained, grown, what it printed)."""
    trained = _trained(tiny_lm)
    save_checkpoint(trained, tiny_lm, tmp_path / "trained", dtype=torch.float32)
    cfg = TrainConfig(hypernet=hypernet, init_checkpoint=str(tmp_path / "trained"), out_dir=tmp_path / "run", steps=1)
    trainer = Trainer(cfg, lm=tiny_lm)
    return trained, trainer.accelerator.unwrap_model(trainer.net), capsys.readouterr().out


def test_a_grown_network_keeps_the_old_targets_and_adds_a_no_op(tiny_lm) -> None:
    trained = _trained(tiny_lm).eval()
    grown = build_hypernetwork(tiny_lm, GROWN).eval()
    assert warm_start(grown, trained) == ["self_attn.o_proj"]
    activations, mask = _inputs(tiny_lm)
    with torch.no_grad():
        old, new = trained(activations, mask), grown(activations, mask)
    for got, want in zip(new["mlp.down_proj"], old["mlp.down_proj"], strict=True):
        torch.testing.assert_close(got, want)
    a, b = new["self_attn.o_proj"]
    assert a.abs().sum() > 0 and torch.count_nonzero(b) == 0  # B = 0: the new target changes nothing yet


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"rank": 6}, "rank: checkpoint 4, config 6, not a multiple of it"),
        ({"rank": 2}, "rank: checkpoint 4, config 2, not a multiple of it"),
        ({"width": 64}, "width: checkpoint 32, config 64"),
        ({"num_blocks": 0}, "num_blocks: checkpoint 1, config 0, fewer"),
        ({"target_modules": ("self_attn.o_proj",)}, r"checkpoint targets \['mlp.down_proj'\] that the config drops"),
    ],
)
def test_a_start_that_would_drop_or_reshape_weights_is_refused(tiny_lm, update, message) -> None:
    other = build_hypernetwork(tiny_lm, SMALL.model_copy(update=update))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(InvalidInputError, match=message):
        warm_start(other, _trained(tiny_lm))
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())  # nothing half-copied


@pytest.mark.parametrize("copies", [2, 3])
def test_a_network_of_k_times_the_rank_starts_with_the_trained_lora(tiny_lm, copies) -> None:
    trained = _trained(tiny_lm).eval()
    activations, mask = _inputs(tiny_lm)

    def delta(net) -> torch.Tensor:  # the LoRA's weight update B @ A per chunk and layer
        with torch.no_grad():
            a, b = net(activations, mask)["mlp.down_proj"]
        return b @ a

    exact = build_hypernetwork(tiny_lm, SMALL.model_copy(update={"rank": 4 * copies})).eval()
    assert warm_start(exact, trained, copy_noise=0.0) == []
    torch.testing.assert_close(delta(exact), delta(trained))
    nudged = build_hypernetwork(tiny_lm, SMALL.model_copy(update={"rank": 4 * copies})).eval()
    warm_start(nudged, trained)
    latents = nudged.latents.view(copies, 4, -1)
    assert torch.equal(latents[0], trained.latents) and not torch.equal(latents[1], trained.latents)
    want = delta(trained)
    assert (delta(nudged) - want).norm() / want.norm() < 0.05  # the copies parted, the LoRA barely moved


def test_training_grows_from_a_checkpoint_with_fewer_targets(tiny_lm, tmp_path, capsys) -> None:
    trained, grown, printed = _grown_by_training(tiny_lm, tmp_path, capsys, GROWN)
    assert "new targets start as no-ops: ['self_attn.o_proj']" in printed
    torch.testing.assert_close(grown.out_scale[1], trained.out_scale[0])  # down_proj is the grown net's 2nd target
    assert torch.count_nonzero(grown.out_scale[0]) == 0
    for name, value in trained.cross.state_dict().items():
        torch.testing.assert_close(grown.cross.state_dict()[name], value)


def test_a_grown_checkpoint_serves_both_targets(tiny_lm, tmp_path) -> None:
    from d2l_rag import DocumentInternalizer

    grown = build_hypernetwork(tiny_lm, GROWN)
    warm_start(grown, _trained(tiny_lm))
    with torch.no_grad():
        grown.out_scale.normal_()  # as if trained: the new target's LoRA now changes the model too
    checkpoint = save_checkpoint(grown, tiny_lm, tmp_path / "grown")
    di = DocumentInternalizer(model=tiny_lm, checkpoint=checkpoint, cache_dir=tmp_path / "cache")
    di.add("memo", "The vault code is 4417. " * 20)
    adapter = di.adapter("memo")
    assert set(adapter.target_modules) == {"self_attn.o_proj", "mlp.down_proj"}
    assert all(torch.count_nonzero(adapter.weights[name][1]) for name in adapter.target_modules)
    answer = di.ask("What is the vault code?", doc_id="memo")
    in_context = di.ask_in_context("What is the vault code?", doc_id="memo")
    assert answer.mode == "adapter" and answer.adapter_rank == adapter.rank
    assert answer.prompt_tokens + 100 < in_context.prompt_tokens  # the document is not in the prompt


def test_training_doubles_the_rank_of_a_checkpoint(tiny_lm, tmp_path, capsys) -> None:
    trained, grown, printed = _grown_by_training(tiny_lm, tmp_path, capsys, SMALL.model_copy(update={"rank": 8}))
    assert "rank 4 -> 8, each latent query repeated 2x" in printed
    torch.testing.assert_close(grown.out_scale, trained.out_scale / 2)


@pytest.mark.parametrize(
    ("update", "new_blocks"),
    [
        ({"num_blocks": 3}, lambda net: net.blocks[1:]),  # two latent self-attention blocks more
        ({"num_rereads": 2}, lambda net: net.rereads),  # two re-reads of the chunk
    ],
)
def test_a_grown_network_starts_with_the_trained_lora_and_its_new_blocks_learn(tiny_lm, update, new_blocks) -> None:
    trained = _trained(tiny_lm).eval()
    grown = build_hypernetwork(tiny_lm, SMALL.model_copy(update=update)).eval()
    assert warm_start(grown, trained) == []
    activations, mask = _inputs(tiny_lm)
    with torch.no_grad():
        want, got = trained(activations, mask)["mlp.down_proj"], grown(activations, mask)["mlp.down_proj"]
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)  # the new blocks are identities
    for name, value in trained.blocks[0].state_dict().items():
        assert torch.equal(grown.blocks[0].state_dict()[name], value)
    a, b = grown.train()(activations, mask)["mlp.down_proj"]
    (a.square().sum() + b.square().sum()).backward()
    assert all(block.attn.out.weight.grad.abs().sum() > 0 for block in new_blocks(grown))  # the zeros move at once


def test_training_deepens_a_checkpoint(tiny_lm, tmp_path, capsys) -> None:
    trained, grown, printed = _grown_by_training(tiny_lm, tmp_path, capsys, SMALL.model_copy(update={"num_blocks": 2}))
    assert "blocks 1 -> 2, the new ones start as identities" in printed
    assert torch.count_nonzero(grown.blocks[1].mlp[-1].weight) == 0
    for name, value in trained.blocks[0].state_dict().items():
        torch.testing.assert_close(grown.blocks[0].state_dict()[name], value)


def test_training_adds_rereads_to_a_checkpoint(tiny_lm, tmp_path, capsys) -> None:
    trained, grown, printed = _grown_by_training(tiny_lm, tmp_path, capsys, SMALL.model_copy(update={"num_rereads": 1}))
    assert "re-reads of the chunk 0 -> 1, the new ones start as identities" in printed
    assert torch.count_nonzero(grown.rereads[0].mlp[-1].weight) == 0
    torch.testing.assert_close(grown.latents, trained.latents)


def test_a_checkpoint_with_rereads_cannot_start_one_with_fewer(tiny_lm) -> None:
    rereading = build_hypernetwork(tiny_lm, SMALL.model_copy(update={"num_rereads": 1}))
    with pytest.raises(InvalidInputError, match="num_rereads: checkpoint 1, config 0, fewer"):
        warm_start(build_hypernetwork(tiny_lm, SMALL), rereading)
