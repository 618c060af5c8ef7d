"""A smoke training run on the tiny random Llama: the KL falls, and a resumed run continues exactly."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace

import pytest
import torch
from torch.nn.attention import SDPBackend

from d2l_rag.config import HypernetConfig
from d2l_rag.model.chunking import tokenize_document
from d2l_rag.testing import tiny_llama
from d2l_rag.training.config import TrainConfig
from d2l_rag.training.examples import QAExample
from d2l_rag.training.logs import training_rows
from d2l_rag.training.pool import PoolItem
from d2l_rag.training.teacher import answer_targets, chat_prompt_ids, greedy_answers
from d2l_rag.training.trainer import TRAINING_ATTENTION, Trainer


def _pool(lm, n: int = 8) -> list[PoolItem]:
    rng = random.Random(0)
    items = []
    docs = [f"The code is {rng.randint(1000, 9999)}. " + "filler text here. " * rng.randint(2, 6) for _ in range(n)]
    prompts = [chat_prompt_ids(lm, "What is the code?", d) for d in docs]
    answers = greedy_answers(lm, prompts, max_new_tokens=6, batch_size=8)
    for doc, prompt, answer in zip(docs, prompts, answers, strict=True):
        ex = QAExample(document=doc, question="What is the code?", answer="", kind="needle")
        items.append(
            PoolItem(ex, tokenize_document(lm.tokenizer, doc), prompt, chat_prompt_ids(lm, "What is the code?"), answer)
        )
    return items


def _config(tmp_path, steps: int) -> TrainConfig:
    return TrainConfig(
        hypernet=HypernetConfig(rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=64),
        out_dir=tmp_path,
        steps=steps,
        batch_size=8,
        lr=3e-3,
        warmup_steps=0,
        weight_decay=0.0,
        min_chunk_tokens=8,
        max_chunk_tokens=48,
        max_chunks=3,
        log_every=5,
        eval_every=10_000,
        eval_at_end=False,
        save_every=10,
    )


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(seed=1)


def _held(lm, pool: list[PoolItem], k: int) -> list[PoolItem]:
    """The pool with the teacher's top-k targets held, as `teacher_top_k` builds it."""
    targets = answer_targets(lm, [i.teacher_prompt for i in pool], [i.answer for i in pool], k, batch_size=8)
    return [replace(item, teacher_top=t) for item, t in zip(pool, targets, strict=True)]


@pytest.mark.parametrize("held_teacher", [False, True], ids=["teacher_forward", "teacher_held"])
def test_training_lowers_kl_on_a_fixed_batch(lm, tmp_path, held_teacher) -> None:
    """The full KL falls, also when the steps train on the binned KL of the teacher's top 8 tokens."""
    pool = _pool(lm)
    train_on = _held(lm, pool, k=8) if held_teacher else pool
    trainer = Trainer(_config(tmp_path, steps=40), lm=lm)

    def fixed_loss() -> float:
        with torch.no_grad():
            return trainer.loss_on(pool, random.Random(7))[0].item()

    before = fixed_loss()
    trainer.fit(pool=train_on)
    after = fixed_loss()
    assert before > 1e-3, f"a fresh hypernetwork must leave a gap to the teacher (KL {before:.4f})"
    assert after < 0.7 * before, f"KL went from {before:.4f} to {after:.4f}; expected a drop of at least 30%"
    assert (tmp_path / "checkpoint" / "hypernetwork.safetensors").is_file()


def test_steps_run_without_cudnn_attention_and_the_setting_is_given_back(lm, tmp_path, monkeypatch) -> None:
    """cuDNN's attention rebuilds a graph at each new length (TRAINING_ATTENTION): off while fitting, back after."""
    assert SDPBackend.CUDNN_ATTENTION not in TRAINING_ATTENTION
    seen: list[bool] = []
    loss_on = Trainer.loss_on

    def recording_loss_on(self, items, rng):
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return loss_on(self, items, rng)

    monkeypatch.setattr(Trainer, "loss_on", recording_loss_on)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    Trainer(_config(tmp_path, steps=2), lm=lm).fit(pool=_pool(lm))
    assert seen == [False, False] and torch.backends.cuda.cudnn_sdp_enabled() == before


def test_each_kinds_kl_weighted_by_its_answer_tokens_gives_the_loss_and_is_logged_as_a_number(lm, tmp_path) -> None:
    """The kinds' KLs stay on the device until the step ends (no wait mid-step); then the log holds plain floats."""
    pool = _pool(lm)
    pool = [
        replace(item, example=replace(item.example, kind=("needle", "facts")[i % 2])) for i, item in enumerate(pool)
    ]
    trainer = Trainer(_config(tmp_path, steps=1), lm=lm)
    loss, info = trainer.loss_on(pool, random.Random(3))
    tokens = {kind: sum(len(i.answer) for i in pool if i.example.kind == kind) for kind in ("needle", "facts")}
    weighted = sum(float(info[f"kl_{kind}"]) * n for kind, n in tokens.items()) / sum(tokens.values())
    assert isinstance(info["kl_facts"], torch.Tensor) and weighted == pytest.approx(loss.item(), rel=1e-5)
    (record,) = trainer.fit(pool=pool)
    assert all(type(record[key]) is float for key in ("loss", "grad_norm", "kl_needle", "kl_facts")), record


def test_resume_continues_from_same_step_and_loss(lm, tmp_path) -> None:
    pool = _pool(lm)
    straight = Trainer(_config(tmp_path / "a", steps=15), lm=lm).fit(pool=pool)
    interrupted = Trainer(_config(tmp_path / "b", steps=15), lm=lm)
    interrupted.fit(pool=pool, until=10)  # saves at step 10 (save_every=10), then "crashes"
    resumed = Trainer(_config(tmp_path / "b", steps=15), lm=lm)
    assert resumed.step == 10
    rest = resumed.fit(pool=pool)
    assert [r["step"] for r in rest] == [11, 12, 13, 14, 15]
    for a, b in zip(straight[10:], rest, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7)


def test_periodic_eval_logs_niah_and_facts_accuracy(tmp_path):
    lm = tiny_llama(seed=0)
    cfg = _config(tmp_path, steps=1).model_copy(update={"eval_lengths": [48], "eval_examples": 2})
    trainer = Trainer(cfg, lm=lm)
    result = trainer.evaluate(tmp_path / "log.jsonl")
    assert set(result) == {"niah", "facts"}
    assert result["niah"]["adapter"]["48"]["n"] == 2 and result["facts"]["adapter"]["48"]["n"] == 2
    by_type = result["facts"]["adapter"]["48"]["by_type"]  # facts are counted by type, needles are not
    assert sum(c["n"] for c in by_type.values()) == 2 and "by_type" not in result["niah"]["adapter"]["48"]
    logged = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert set(logged) == {"step", "eval_niah", "eval_facts"}


def test_a_run_that_trains_on_magic_words_also_evaluates_them(tmp_path):
    lm = tiny_llama(seed=0)
    cfg = _config(tmp_path, steps=1).model_copy(update={"eval_lengths": [48], "eval_examples": 2})
    cfg = cfg.model_copy(update={"mix": cfg.mix.model_copy(update={"word_needle": 0.2})})
    result = Trainer(cfg, lm=lm).evaluate(tmp_path / "log.jsonl")
    assert result["words"]["adapter"]["48"]["n"] == 2
    logged = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert set(logged) == {"step", "eval_niah", "eval_facts", "eval_words"}


@pytest.mark.parametrize("buckets", [1, 3])
def test_gradient_free_chunks_and_length_buckets_give_the_same_loras_in_order(lm, tmp_path, buckets) -> None:
    cfg = _config(tmp_path, steps=1).model_copy(update={"encode_batch": 2 if buckets == 1 else 8})
    trainer = Trainer(cfg, lm=lm)
    rng = random.Random(3)
    vocab = lm.model.config.vocab_size
    chunks = [[rng.randrange(5, vocab) for _ in range(rng.randint(3, 20))] for _ in range(7)]
    with torch.no_grad():  # make the zero-initialised output scale non-zero, so B carries the chunk's content
        trainer.accelerator.unwrap_model(trainer.net).out_scale.fill_(0.5)
    everything = trainer._chunk_loras(chunks, [True] * 7)  # one pass, in order: the reference
    trainer.cfg = cfg.model_copy(update={"encode_buckets": buckets})
    bucketed = trainer._chunk_loras(chunks, [True] * 7)
    mixed = trainer._chunk_loras(chunks, [False, True, False, False, True, False, False])
    free = trainer._chunk_loras(chunks, [False] * 7)  # with buckets: one gradient-free pass, sorted by length
    for name, (a, b) in everything.items():
        assert not free[name][0].requires_grad
        torch.testing.assert_close(free[name][0], a.detach(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(free[name][1], b.detach(), atol=1e-5, rtol=1e-4)
        for got in (bucketed, mixed):
            assert got[name][0].requires_grad and got[name][1].requires_grad
            torch.testing.assert_close(got[name][0], a, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(got[name][1], b, atol=1e-5, rtol=1e-4)


def test_length_buckets_split_the_chunks_by_length_into_groups_of_about_as_many(lm, tmp_path) -> None:
    trainer = Trainer(_config(tmp_path, steps=1).model_copy(update={"encode_buckets": 3}), lm=lm)
    chunks = [[1] * n for n in (9, 2, 30, 5, 5, 17, 1)]
    groups = trainer._length_groups([0, 2, 3, 4, 5, 6], chunks)
    assert sorted(i for g in groups for i in g) == [0, 2, 3, 4, 5, 6] and [len(g) for g in groups] == [2, 2, 2]
    lengths = [[len(chunks[i]) for i in g] for g in groups]
    assert all(max(a) <= min(b) for a, b in itertools.pairwise(lengths))  # shortest group first
    assert trainer._length_groups([4], chunks) == [[4]] and trainer._length_groups([], chunks) == []


def test_capped_gradient_chunks_still_train_and_log_the_loss_of_each_kind(lm, tmp_path) -> None:
    pool = _pool(lm)
    capped = {"max_grad_chunks": 1, "min_chunk_tokens": 4, "max_chunk_tokens": 8}
    cfg = _config(tmp_path, steps=3).model_copy(update=capped)
    trainer = Trainer(cfg, lm=lm)
    loss, info = trainer.loss_on(pool, random.Random(1))
    loss.backward()
    assert info["grad_chunks"] == len(pool) < info["chunks"], info
    assert info["kl_needle"] == pytest.approx(loss.item(), rel=1e-5)  # one kind: its loss is the loss
    grads = [p.grad for p in trainer.net.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_time_limit_stops_saves_and_resumes(lm, tmp_path) -> None:
    pool = _pool(lm)
    cfg = _config(tmp_path, steps=50).model_copy(update={"time_limit_s": 1e-6})
    history = Trainer(cfg, lm=lm).fit(pool=pool)
    assert [r["step"] for r in history] == [1]
    assert list(training_rows(tmp_path / "log.jsonl")) == [1]  # the log reads back as the history it wrote
    assert Trainer(cfg, lm=lm).step == 1  # the state was saved at the stop


def test_a_run_annealed_by_its_time_limit_ends_at_the_floor_and_resumes_there(lm, tmp_path) -> None:
    pool = _pool(lm)
    cfg = _config(tmp_path, steps=50).model_copy(update={"time_limit_s": 1e-6})
    by_steps = Trainer(cfg.model_copy(update={"out_dir": tmp_path / "steps"}), lm=lm).fit(pool=pool)
    assert by_steps[-1]["lr"] > 0.9 * cfg.lr  # cut at step 1 of 50: the cosine has barely moved
    timed = cfg.model_copy(update={"out_dir": tmp_path / "timed", "anneal_by_time_limit": True})
    by_time = Trainer(timed, lm=lm).fit(pool=pool)
    assert by_time[-1]["lr"] == pytest.approx(0.1 * cfg.lr)  # the floor, reached as the time ran out
    assert Trainer(timed, lm=lm).time_progress == 1.0  # a resumed run stays annealed


def test_annealing_by_time_needs_a_time_limit(tmp_path) -> None:
    with pytest.raises(ValueError, match="anneal_by_time_limit"):
        TrainConfig(**_config(tmp_path, steps=5).model_dump() | {"anneal_by_time_limit": True})


def test_a_refreshed_pool_is_drawn_anew_and_a_resumed_run_draws_the_one_it_was_using(lm, tmp_path, monkeypatch):
    import d2l_rag.training.trainer as trainer_module

    seeds: list[int] = []
    examples = [item.example for item in _pool(lm)]

    def draw(lm_, cfg, seed, n=None, split="train"):
        seeds.append(seed)
        return examples

    monkeypatch.setattr(trainer_module, "draw_examples", draw)
    cfg = _config(tmp_path, steps=5).model_copy(update={"pool_refresh_steps": 2, "save_every": 3, "seed": 4})
    Trainer(cfg, lm=lm).fit(until=3)
    assert seeds == [4000, 4002]  # drawn at step 0 and at step 2
    pools = [r for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if "pool_kept" in r]
    assert [r["step"] for r in pools] == [0, 2]
    assert all(r["pool_drawn"] == len(examples) >= r["pool_kept"] > 0 for r in pools)
    assert all(r["pool_draw_s"] >= 0 and r["pool_teacher_s"] > 0 for r in pools)
    seeds.clear()
    resumed = Trainer(cfg, lm=lm)
    assert resumed.step == 3
    resumed.fit()
    assert seeds == [4002, 4004]  # the pool of steps 2-3 again, then step 4's


def test_a_pool_refresh_that_would_outlast_the_time_limit_is_skipped(lm, tmp_path, monkeypatch):
    """Stage O drew a pool at 829 s of 840 and trained one step on it: a refresh that cannot fit is skipped."""
    import time

    import d2l_rag.training.trainer as trainer_module

    seeds: list[int] = []
    examples = [item.example for item in _pool(lm)]

    def slow_draw(lm_, cfg, seed, n=None, split="train"):
        seeds.append(seed)
        time.sleep(5.0)  # a pool takes as long as the whole time limit: no refresh can fit
        return examples

    monkeypatch.setattr(trainer_module, "draw_examples", slow_draw)
    cfg = _config(tmp_path, steps=4).model_copy(update={"pool_refresh_steps": 2, "seed": 4, "time_limit_s": 5.0})
    trainer = Trainer(cfg, lm=lm)
    trainer.fit()
    assert seeds == [4000]  # the first pool only
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    skipped = [r for r in records if "pool_refresh_skipped_s" in r]
    # four steps of the tiny model take well under the limit (the first ~3 s on a loaded CI core, then milliseconds):
    # the run went on with the old pool
    assert trainer.step > 2
    assert [r["step"] for r in skipped] == [2] and skipped[0]["pool_refresh_skipped_s"] >= 5.0
    assert trainer.refresh_fits(0.5, spent=0.5) and not trainer.refresh_fits(3.0, spent=0.5)  # of 5 s
    assert trainer.refresh_fits(None, spent=0.99)  # a pool handed in: nothing to go by


def test_without_a_time_limit_every_refresh_fits(lm, tmp_path) -> None:
    trainer = Trainer(_config(tmp_path, steps=2), lm=lm)
    assert trainer.refresh_fits(1e9, spent=0.0)


def test_a_warmup_stable_decay_run_holds_the_lr_saves_the_stable_weights_and_ends_annealed(lm, tmp_path, monkeypatch):

    import d2l_rag.training.trainer as trainer_module
    from d2l_rag.model.checkpoint import load_checkpoint

    ticks = itertools.count()  # a clock that moves one second each time the run reads it

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return float(next(ticks))

    monkeypatch.setattr(trainer_module, "time", Clock)
    cfg = _config(tmp_path, steps=1000).model_copy(update={"time_limit_s": 20.0, "anneal_share": 0.5})
    history = Trainer(cfg, lm=lm).fit(pool=_pool(lm))
    lrs = [r["lr"] for r in history]
    assert 1000 > len(lrs) > 5 and lrs[-1] == pytest.approx(0.1 * cfg.lr)  # stopped by time, at the floor
    stable = load_checkpoint(tmp_path / "checkpoint_stable", lm).config.training["step"]
    assert 0 < stable < len(lrs)
    assert lrs[: stable - 1] == pytest.approx([cfg.lr] * (stable - 1))  # held until the decay began
    assert all(a >= b for a, b in itertools.pairwise(lrs[stable - 1 :])) and lrs[stable] < cfg.lr


def test_the_warmup_stable_decay_schedule_needs_a_time_limit_and_no_other_anneal(tmp_path) -> None:
    with pytest.raises(ValueError, match="anneal_share"):
        TrainConfig(**_config(tmp_path, steps=5).model_dump() | {"anneal_share": 0.2})
    with pytest.raises(ValueError, match="two schedules"):
        TrainConfig(
            **_config(tmp_path, steps=5).model_dump()
            | {"anneal_share": 0.2, "anneal_by_time_limit": True, "time_limit_s": 10.0}
        )


def test_profiled_steps_write_a_table_of_where_their_time_went(lm, tmp_path) -> None:
    """`profile_at` writes one table per window, also for a window the run stops inside."""
    pool = _pool(lm)
    cfg = _config(tmp_path, steps=6).model_copy(update={"profile_at": [1, 5], "profile_steps": 2})
    Trainer(cfg, lm=lm).fit(pool=pool)
    full = (tmp_path / "profile_step1.txt").read_text()
    assert full.startswith("steps 2 to 3 of this run: ")
    assert "aten::" in full and "s a step" in full  # operators by name, the wall time a step
    cut = (tmp_path / "profile_step5.txt").read_text()  # one step of its two ran before the run's end
    assert cut.startswith("steps 6 to 6 of this run: ")
    assert sorted(p.name for p in tmp_path.glob("profile_step*.txt")) == ["profile_step1.txt", "profile_step5.txt"]


def test_a_window_whose_step_did_not_finish_says_so(tmp_path) -> None:
    from d2l_rag.training.profiling import StepProfiler

    profiler = StepProfiler(tmp_path, at=[3], steps=2)
    profiler.before_step(3)
    torch.ones(8) @ torch.ones(8)  # the step's work, cut short (an error inside it)
    profiler.close()
    assert (tmp_path / "profile_step3.txt").read_text().startswith("step 4 of this run did not finish (")
