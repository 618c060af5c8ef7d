"""The shipped checkpoint's training lineage names real configs and logs, so docs/training_loss.png can be redrawn."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import pytest

from d2l_rag.default_checkpoint import SHIPPED_CHECKPOINTS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = SHIPPED_CHECKPOINTS / "smollm2-135m-instruct"
SHIPPED_CONFIG = json.loads((SHIPPED / "config.json").read_text())
LOGS = ROOT / "docs" / "training_logs"


def _load_plot_script():
    spec = importlib.util.spec_from_file_location("plot_training_loss", ROOT / "scripts" / "plot_training_loss.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plot_training_loss = _load_plot_script()  # scripts/ is not a package: loaded once from its path


def test_every_stage_names_its_config_and_log_and_the_last_is_the_shipped_run():
    training = SHIPPED_CONFIG["training"]
    lineage = training["lineage"]
    for stage in lineage:
        assert (ROOT / stage["config"]).is_file(), stage
        assert stage.get("log_lost") or (LOGS / f"stage_{stage['stage']}.jsonl").is_file()
    last = lineage[-1]
    assert last["steps"] == training["step"]
    assert json.loads((ROOT / last["config"]).read_text())["seed"] == training["config"]["seed"]


def test_curves_chain_the_stages_and_a_lost_log_keeps_its_place(tmp_path: Path):
    lineage = SHIPPED_CONFIG["training"]["lineage"]
    curves = plot_training_loss.stage_curves(SHIPPED, LOGS)
    assert len(curves) == sum(not s.get("log_lost") for s in lineage)
    assert all(steps and len(steps) == len(loss) for _, steps, loss in curves)
    assert all(max(a[1]) < min(b[1]) for a, b in itertools.pairwise(curves))

    # a copy whose first stage lost its log: the second stage's curve starts after the first's steps all the same
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    first, second = ({**s} for s in lineage[:2])
    first["log_lost"] = True
    config = {**SHIPPED_CONFIG, "training": {**SHIPPED_CONFIG["training"], "lineage": [first, second]}}
    (checkpoint / "config.json").write_text(json.dumps(config))
    (only,) = plot_training_loss.stage_curves(checkpoint, LOGS)
    assert only[0].startswith(second["stage"]) and min(only[1]) > first["steps"]


def test_an_average_names_its_members_and_their_weights():
    """A checkpoint shipped as a mean of runs (d2l_rag.training.average) says which runs, so it can be remade."""
    members = SHIPPED_CONFIG["training"].get("average_of", [])
    assert not members or len(members) >= 2
    assert sum(m["weight"] for m in members) == pytest.approx(1.0 if members else 0.0)
    stages = {s["stage"] for s in SHIPPED_CONFIG["training"]["lineage"]}
    for member in members:
        assert len(member["id"]) == 16 and int(member["id"], 16) >= 0
        stage = member["checkpoint"].split(" step ")[0]
        if stage not in stages:  # a sibling run off the chain: it names its config, its log and where it began
            assert (ROOT / member["config"]).is_file(), member
            assert (LOGS / f"stage_{stage}.jsonl").is_file(), member
            assert member["from"].split(" step ")[0] in stages, member
