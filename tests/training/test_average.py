"""Checkpoint averaging: the mean of two checkpoints loads on their base model and holds the mean of their weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from d2l_rag.config import HypernetConfig
from d2l_rag.errors import D2LError
from d2l_rag.model import FrozenLM, LoadedHypernetwork, load_checkpoint, save_checkpoint
from d2l_rag.training.average import average_checkpoints, main


def _checkpoint(lm: FrozenLM, config: HypernetConfig, directory: Path, seed: int, step: int) -> Path:
    loaded = LoadedHypernetwork.fresh(lm, config, seed=seed)
    with torch.no_grad():  # a fresh network's output scalers are zero: make every tensor differ between seeds
        for tensor in loaded.network.parameters():
            tensor.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(seed * 1000 + tensor.numel()))
    return save_checkpoint(loaded.network, lm, directory, training={"step": step})


@pytest.fixture
def two_checkpoints(tiny_lm: FrozenLM, tiny_hypernet_config: HypernetConfig, tmp_path: Path) -> tuple[Path, Path]:
    return (
        _checkpoint(tiny_lm, tiny_hypernet_config, tmp_path / "a", seed=1, step=100),
        _checkpoint(tiny_lm, tiny_hypernet_config, tmp_path / "b", seed=2, step=200),
    )


def test_mean_is_elementwise_loads_and_records_its_inputs(tiny_lm, two_checkpoints, tmp_path):
    a, b = two_checkpoints
    out = average_checkpoints([a, b], tmp_path / "mean", weights=[3, 1])

    wa, wb, mean = (load_file(p / "hypernetwork.safetensors") for p in (a, b, out))
    for name, tensor in mean.items():
        expected = (0.75 * wa[name].float() + 0.25 * wb[name].float()).to(tensor.dtype)
        torch.testing.assert_close(tensor, expected, atol=0, rtol=0)
    assert any(not torch.equal(mean[k], wa[k]) for k in mean)

    loaded = load_checkpoint(out, tiny_lm)  # the base fingerprint and the hypernet config carry over
    notes = json.loads((out / "config.json").read_text())["training"]["average_of"]
    assert [(n["step"], n["weight"]) for n in notes] == [(100, 0.75), (200, 0.25)]
    assert loaded.id not in {n["id"] for n in notes}


def test_mismatched_networks_are_refused_and_nothing_is_written(tiny_lm, two_checkpoints, tmp_path):
    a, _ = two_checkpoints
    wider = _checkpoint(
        tiny_lm,
        HypernetConfig(rank=8, width=32, num_heads=4, num_blocks=1, chunk_tokens=64),
        tmp_path / "wider",
        seed=3,
        step=1,
    )
    with pytest.raises(D2LError, match="hypernet configs differ"):
        average_checkpoints([a, wider], tmp_path / "mean")
    assert not (tmp_path / "mean").exists()


@pytest.mark.parametrize(
    ("weights", "message"), [([1.0], "2 checkpoints"), ([1.0, 0.0], "must be positive"), ([1, -1], "must be positive")]
)
def test_bad_weights_are_named(two_checkpoints, tmp_path, weights, message):
    with pytest.raises(D2LError, match=message):
        average_checkpoints(two_checkpoints, tmp_path / "mean", weights=weights)


def test_one_checkpoint_is_not_an_average(two_checkpoints, tmp_path):
    with pytest.raises(D2LError, match="at least 2"):
        average_checkpoints(two_checkpoints[:1], tmp_path / "mean")


def test_missing_weights_file_is_named(two_checkpoints, tmp_path):
    a, b = two_checkpoints
    (b / "hypernetwork.safetensors").unlink()
    with pytest.raises(D2LError, match=r"hypernetwork\.safetensors not found"):
        average_checkpoints([a, b], tmp_path / "mean")


def test_command_line_writes_the_mean_and_reports_errors(two_checkpoints, tmp_path, capsys):
    main([*map(str, two_checkpoints), "--out", str(tmp_path / "mean")])
    assert "wrote" in capsys.readouterr().out and (tmp_path / "mean" / "config.json").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main([str(two_checkpoints[0]), "--out", str(tmp_path / "other")])
    assert exit_info.value.code == 2 and "at least 2" in capsys.readouterr().err
