"""The teacher held in the pool: its top-k targets, the binned KL, and a step that trains on them."""

from __future__ import annotations

import random

import pytest
import torch

from d2l_rag.testing import tiny_llama
from d2l_rag.training.config import DataMix, TrainConfig
from d2l_rag.training.objective import (
    answer_hits,
    answer_logits,
    binned_token_kl,
    pack_with_answers,
    sharpen_targets,
    stack_teacher_top_k,
    teacher_top_k,
    token_kl,
)
from d2l_rag.training.pool import build_pool
from d2l_rag.training.teacher import answer_targets
from d2l_rag.training.trainer import Trainer
from tests.training.test_trainer import _config, _pool
from tests.training.test_trainer import _held as _held_pool


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(seed=1)


def _logits(*shape: int, seed: int, spread: float = 3.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * spread


def _held(teacher: torch.Tensor, k: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mask = torch.zeros(teacher.shape[:2])
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    return stack_teacher_top_k(teacher_top_k(teacher, mask, k), teacher.shape[1], torch.device("cpu"))


def test_answer_hits_mark_the_tokens_whose_likeliest_is_the_answers_and_nothing_past_an_answer() -> None:
    packed = pack_with_answers([[5, 6], [7]], [[1, 2, 3], [4]], pad_id=0, device=torch.device("cpu"))
    logits = torch.zeros(2, 3, 10)
    for b, j, token in ((0, 0, 1), (0, 1, 9), (0, 2, 3), (1, 0, 4), (1, 1, 0), (1, 2, 0)):
        logits[b, j, token] = 1.0  # row 0 right at answer tokens 0 and 2; row 1 right at its one token
    torch.testing.assert_close(answer_hits(logits, packed), torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))


def test_binned_kl_is_the_full_kl_when_k_covers_the_vocabulary() -> None:
    teacher, student = _logits(3, 5, 40, seed=0), _logits(3, 5, 40, seed=1)
    binned = binned_token_kl(*_held(teacher, 40, [5, 5, 5]), student)
    torch.testing.assert_close(binned, token_kl(teacher, student), atol=1e-5, rtol=1e-5)


def test_binned_kl_is_between_zero_and_the_full_kl_and_zero_where_the_student_matches() -> None:
    teacher, student = _logits(4, 6, 50, seed=2), _logits(4, 6, 50, seed=3)
    full = token_kl(teacher, student)
    for k in (1, 5, 20):
        binned = binned_token_kl(*_held(teacher, k, [6] * 4), student)
        assert (binned >= -1e-6).all() and (binned <= full + 1e-5).all(), k
    assert binned_token_kl(*_held(teacher, 5, [6] * 4), teacher).abs().max() < 1e-5


def test_positions_past_an_answer_cost_nothing_and_give_finite_gradients() -> None:
    teacher = _logits(2, 4, 30, seed=4)
    student = _logits(2, 4, 30, seed=5).requires_grad_()
    kl = binned_token_kl(*_held(teacher, 3, [4, 1]), student)
    assert torch.isfinite(kl).all() and kl[1, 1:].abs().max() < 1e-6 and kl[1, 0] > 0
    kl.sum().backward()
    assert torch.isfinite(student.grad).all() and student.grad[1, 1:].abs().max() == 0


def test_sharpened_targets_are_the_full_softmax_at_that_temperature_when_k_covers_the_vocabulary() -> None:
    teacher, student = _logits(3, 5, 40, seed=6), _logits(3, 5, 40, seed=7)
    ids, logprobs, tails = _held(teacher, 40, [5, 5, 5])
    assert sharpen_targets(logprobs, tails, 1.0) == (logprobs, tails)
    sharp = binned_token_kl(ids, *sharpen_targets(logprobs, tails, 0.5), student)
    torch.testing.assert_close(sharp, token_kl(teacher / 0.5, student), atol=1e-5, rtol=1e-5)


def test_sharpening_puts_more_of_the_target_on_the_top_token_and_keeps_padding() -> None:
    ids, logprobs, tails = _held(_logits(2, 4, 30, seed=8), 3, [4, 1])
    top, tail = sharpen_targets(logprobs, tails, 0.5)
    total = torch.cat([top, tail[..., None]], -1).logsumexp(-1)
    torch.testing.assert_close(total[0], torch.zeros(4), atol=1e-5, rtol=0)
    assert (top[0, :, 0] > logprobs[0, :, 0]).all()
    assert (top[1, 1:] == logprobs[1, 1:]).all() and (tail[1, 1:] == tails[1, 1:]).all()
    assert binned_token_kl(ids, top, tail, _logits(2, 4, 30, seed=9))[1, 1:].abs().max() < 1e-6


def test_answer_targets_are_the_teachers_distribution_on_each_answer(lm) -> None:
    pool = _pool(lm, n=5)
    prompts, answers = [i.teacher_prompt for i in pool], [i.answer for i in pool]
    targets = answer_targets(lm, prompts, answers, k=4, batch_size=2)  # batches of sorted lengths, order kept
    packed = pack_with_answers(prompts, answers, lm.tokenizer.pad_token_id, lm.device)
    with torch.no_grad():
        logits = answer_logits(lm.model, packed)
    for b, (target, answer) in enumerate(zip(targets, answers, strict=True)):
        assert target.ids.shape == target.logprobs.shape == (len(answer), 4)
        torch.testing.assert_close(target.ids[:, 0], logits[b, : len(answer)].argmax(-1))
        total = torch.cat([target.logprobs, target.tail_logprob[:, None]], 1).logsumexp(1)
        torch.testing.assert_close(total, torch.zeros(len(answer)), atol=1e-4, rtol=0)


def test_a_step_on_held_targets_matches_the_teachers_forward_when_k_covers_the_vocabulary(lm, tmp_path) -> None:
    pool = _pool(lm)
    trainer = Trainer(_config(tmp_path, steps=1), lm=lm)
    with torch.no_grad():  # a non-zero adapter, so the student differs from the bare base
        trainer.accelerator.unwrap_model(trainer.net).out_scale.fill_(0.5)
    vocab = lm.model.config.vocab_size
    for k, close in ((vocab, True), (3, False)):
        held = _held_pool(lm, pool, k)
        with torch.no_grad():
            exact, _ = trainer.loss_on(pool, random.Random(2))
            binned, info = trainer.loss_on(held, random.Random(2))
        assert binned.item() == pytest.approx(exact.item(), rel=1e-4) if close else binned.item() < exact.item()
        assert info["kl_needle"] == pytest.approx(binned.item(), rel=1e-5)


def test_a_step_at_a_temperature_trains_on_sharper_targets_and_logs_the_kl_at_temperature_one(lm, tmp_path) -> None:
    pool = _pool(lm)
    held = _held_pool(lm, pool, 3)
    losses, logged = {}, {}
    for temperature in (1.0, 0.5):
        trainer = Trainer(
            _config(tmp_path / str(temperature), steps=1).model_copy(update={"teacher_temperature": temperature}), lm=lm
        )
        with torch.no_grad():
            trainer.accelerator.unwrap_model(trainer.net).out_scale.fill_(0.5)
            for name, items in (("full", pool), ("held", held)):
                loss, info = trainer.loss_on(items, random.Random(2))
                losses[temperature, name] = loss.item()
                logged[temperature, name] = tuple(float(info[f"{k}_needle"]) for k in ("kl", "top1", "exact"))
    for name in ("full", "held"):
        assert losses[0.5, name] != pytest.approx(losses[1.0, name], rel=1e-3)
        assert logged[0.5, name] == pytest.approx(logged[1.0, name], rel=1e-5)  # the KL and the greedy agreement
        assert all(0.0 <= share <= 1.0 for share in logged[1.0, name][1:])
        assert logged[1.0, name][0] == pytest.approx(losses[1.0, name], rel=1e-5)


def test_a_pool_holds_the_targets_when_the_config_asks(lm) -> None:
    cfg = TrainConfig(
        pool_size=12, teacher_batch=4, answer_tokens=4, max_doc_tokens=200, teacher_top_k=6, mix=DataMix(prose=0)
    )
    items = build_pool(lm, cfg, seed=3)
    assert items and all(i.teacher_top is not None and i.teacher_top.ids.shape == (len(i.answer), 6) for i in items)
    assert all(i.teacher_top is None for i in build_pool(lm, cfg.model_copy(update={"teacher_top_k": 0}), seed=3))
