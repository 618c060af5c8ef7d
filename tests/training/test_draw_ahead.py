"""Drawing the next pool in a background process while this one trains: the same examples, the same run."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from d2l_rag.testing import tiny_llama
from d2l_rag.training.config import DataMix, TrainConfig
from d2l_rag.training.pool import draw_examples, draw_examples_without_model
from d2l_rag.training.trainer import Trainer
from tests.training.test_trainer import _config

NO_PROSE = DataMix(needle=1, negative=1, facts=1, prose=0)


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(seed=1)


def _refreshing(tmp_path, **update) -> TrainConfig:
    pools = {"pool_size": 12, "teacher_batch": 12, "answer_tokens": 4, "max_doc_tokens": 120, "mix": NO_PROSE}
    return _config(tmp_path, steps=5).model_copy(update={"pool_refresh_steps": 2, "seed": 3, **pools, **update})


def test_the_tokenizer_alone_draws_the_examples_the_model_draws(lm) -> None:
    cfg = TrainConfig(pool_size=10, max_doc_tokens=150, mix=NO_PROSE)
    assert draw_examples_without_model(lm.tokenizer, cfg, seed=8) == draw_examples(lm, cfg, seed=8)
    with_prose = cfg.model_copy(update={"mix": DataMix(needle=0, negative=0, facts=0, prose=1)})
    with pytest.raises(ValueError, match="prose questions"):
        draw_examples_without_model(lm.tokenizer, with_prose, seed=8)


def test_a_run_drawing_ahead_trains_exactly_as_one_drawing_in_turn(lm, tmp_path, monkeypatch) -> None:
    import d2l_rag.training.trainer as trainer_module

    drawn_here: list[int] = []

    def recorded(lm_, cfg, seed, n=None, split="train"):
        drawn_here.append(seed)
        return draw_examples(lm_, cfg, seed, n, split)

    monkeypatch.setattr(trainer_module, "draw_examples", recorded)
    in_turn = Trainer(_refreshing(tmp_path / "turn"), lm=lm).fit()
    assert drawn_here == [3000, 3002, 3004]
    drawn_here.clear()
    ahead_trainer = Trainer(_refreshing(tmp_path / "ahead", draw_ahead=True), lm=lm)
    ahead = ahead_trainer.fit()
    assert drawn_here == [3000]  # the pools of steps 2 and 4 came from the background process
    assert [r["loss"] for r in ahead] == pytest.approx([r["loss"] for r in in_turn], rel=1e-5)
    logged = [json.loads(line) for line in (tmp_path / "ahead" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "pool_kept" in r] == [0, 2, 4]
    assert ahead_trainer._drawer is None  # the background process is gone once the run ends


def test_drawing_ahead_needs_a_mix_without_prose(tmp_path) -> None:
    with pytest.raises(ValidationError, match="draw_ahead"):
        TrainConfig(draw_ahead=True, mix=DataMix(prose=0.1))
