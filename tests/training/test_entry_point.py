"""The shipped training recipes validate, name the embedded model, and take command-line overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from d2l_rag.training import __main__ as entry
from d2l_rag.training.config import TrainConfig

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.json"))


def test_there_are_recipes() -> None:
    assert len(RECIPES) >= 5, RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_each_recipe_validates_and_trains_the_embedded_model(path: Path) -> None:
    cfg = TrainConfig.model_validate(json.loads(path.read_text()))
    # a machine-specific path here would break `d2l-rag train --config` everywhere else (docs/training.md)
    assert cfg.base_model is None


def test_command_line_overrides_the_recipe(monkeypatch, tmp_path: Path) -> None:
    seen: list[TrainConfig] = []

    class RecordingTrainer:
        def __init__(self, cfg: TrainConfig) -> None:
            seen.append(cfg)

        def fit(self) -> None:
            pass

    monkeypatch.setattr("d2l_rag.training.trainer.Trainer", RecordingTrainer)
    recipe = RECIPES[0]
    argv = [str(recipe), "--steps", "3", "--out", str(tmp_path / "run"), "--init", "ckpt", "--base-model", "m.gguf"]
    entry.main(argv)
    (cfg,) = seen
    assert (cfg.steps, cfg.out_dir, cfg.init_checkpoint, cfg.base_model) == (3, tmp_path / "run", "ckpt", "m.gguf")
    entry.main([str(recipe)])
    assert seen[1].steps == json.loads(recipe.read_text())["steps"] and seen[1].base_model is None
