"""Meta-training loop: one script for CPU (smoke), 1 GPU or 8 GPUs via `accelerate`; resumable.

Each step: cut every pool document into random chunks, encode *all* chunks of the step in one batch
(frozen base, no grad), run the hypernetwork on them (grad), concatenate each document's chunk LoRAs on
rank, and minimise KL(teacher with document || student with adapter) on the teacher's answer tokens (binned over
the teacher's top k tokens when the pool holds them, `teacher_top_k`, which spares the teacher's forward).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import time
from itertools import pairwise
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.nn.attention import SDPBackend, sdpa_kernel

from d2l_rag.adapters.compose import split_chunk_loras, stack_for_batch
from d2l_rag.model.base import FrozenLM, load_base_model
from d2l_rag.model.checkpoint import (
    CheckpointConfig,
    LoadedHypernetwork,
    build_hypernetwork,
    load_checkpoint,
    save_checkpoint,
)
from d2l_rag.model.device_copy import to_device
from d2l_rag.model.encoder import encode_chunks, pad_chunks
from d2l_rag.model.hypernetwork import ChunkLoras
from d2l_rag.model.lora_apply import apply_lora
from d2l_rag.training.chunk_sampling import choose_grad_chunks, split_into_chunks
from d2l_rag.training.config import TrainConfig
from d2l_rag.training.examples import QAExample
from d2l_rag.training.objective import (
    answer_hits,
    answer_logits,
    binned_token_kl,
    pack_with_answers,
    sharpen_targets,
    stack_teacher_top_k,
    token_kl,
)
from d2l_rag.training.pool import PoolItem, answer_examples, draw_examples, draw_examples_without_model, kind_counts
from d2l_rag.training.profiling import StepProfiler
from d2l_rag.training.warm_start import warm_start

__all__ = ["TRAINING_ATTENTION", "Trainer"]

STATE_WEIGHTS = "state_weights.safetensors"  # fp32 weights for exact resume (the shipped file is bf16)
STATE_OPTIM = "state_optim.pt"
STABLE_CHECKPOINT = "checkpoint_stable"  # anneal_share: the weights before the anneal, to continue at the full lr
# Attention kernels training may use: all but cuDNN's, which builds a graph for every new shape (~1.6 ms of host time
# a call at training's drawn lengths, a third of a step's host time in R3's profile; benchmarks/attention_backends.py)
TRAINING_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class Trainer:
    def __init__(self, cfg: TrainConfig, lm: FrozenLM | None = None) -> None:
        from accelerate import Accelerator

        self.cfg = cfg
        cuda = torch.cuda.is_available()
        self.accelerator = Accelerator(mixed_precision="bf16" if cuda else "no")
        device = self.accelerator.device
        self.lm = lm or load_base_model(cfg.base_model, device=str(device), dtype="bfloat16" if cuda else "float32")
        torch.manual_seed(cfg.seed)
        net = build_hypernetwork(self.lm, cfg.hypernet)
        if cfg.init_checkpoint:
            trained = load_checkpoint(cfg.init_checkpoint, self.lm).network
            fresh_targets = warm_start(net, trained)
            if fresh_targets:
                self.accelerator.print(f"from {cfg.init_checkpoint}; new targets start as no-ops: {fresh_targets}")
            if trained.config.rank != cfg.hypernet.rank:
                self.accelerator.print(
                    f"from {cfg.init_checkpoint}; rank {trained.config.rank} -> {cfg.hypernet.rank}, each latent "
                    f"query repeated {cfg.hypernet.rank // trained.config.rank}x"
                )
            for field, blocks in (("num_blocks", "blocks"), ("num_rereads", "re-reads of the chunk")):
                before, after = getattr(trained.config, field), getattr(cfg.hypernet, field)
                if before != after:
                    self.accelerator.print(
                        f"from {cfg.init_checkpoint}; {blocks} {before} -> {after}, the new ones start as identities"
                    )
        net.to(device).train().requires_grad_(True)
        decay = [p for p in net.parameters() if p.dim() >= 2]  # matrices decay; norms, biases, scalers don't
        no_decay = [p for p in net.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.95),
        )
        self.time_progress = 0.0  # share of time_limit_s spent, agreed by every process; never goes back
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor)
        self.net, self.optimizer, self.scheduler = self.accelerator.prepare(net, optimizer, scheduler)
        self.step = 0
        self.out_dir = Path(cfg.out_dir)
        self._drawer: Pool | None = None  # the process drawing the next pool's examples (cfg.draw_ahead)
        self._drawn_ahead: tuple[int, AsyncResult] | None = None  # (its pool seed, its examples to come)
        self._resume_if_possible()

    # -- schedule and state -------------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.anneal_share is not None:  # held until the last share of the time limit, annealed over it
            progress = max(0.0, self.time_progress - (1 - cfg.anneal_share)) / cfg.anneal_share
        else:
            progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            if cfg.anneal_by_time_limit:
                progress = max(progress, self.time_progress)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def _resume_if_possible(self) -> None:
        weights, optim = self.out_dir / STATE_WEIGHTS, self.out_dir / STATE_OPTIM
        if not (weights.is_file() and optim.is_file()):
            return
        net = self.accelerator.unwrap_model(self.net)
        net.load_state_dict(load_file(str(weights), device=str(self.accelerator.device)))
        state = torch.load(optim, map_location=self.accelerator.device, weights_only=True)  # no arbitrary unpickling
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.time_progress = float(state.get("time_progress", 0.0))
        self.accelerator.print(f"resumed from {self.out_dir} at step {self.step}")

    def save(self) -> None:
        """Shippable bf16 checkpoint plus fp32 weights and optimizer state for an exact resume."""
        if not self.accelerator.is_main_process:
            return
        net = self.accelerator.unwrap_model(self.net)
        save_checkpoint(net, self.lm, self.out_dir / "checkpoint", training=self._training_notes())
        save_file(
            {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()},
            str(self.out_dir / STATE_WEIGHTS),
        )
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "time_progress": self.time_progress,
            },
            self.out_dir / STATE_OPTIM,
        )

    def _save_stable(self) -> None:
        """The weights where the anneal of `cfg.anneal_share` starts, once: the next lease continues from them."""
        stable = self.out_dir / STABLE_CHECKPOINT
        if self.accelerator.is_main_process and not stable.exists():
            net = self.accelerator.unwrap_model(self.net)
            save_checkpoint(net, self.lm, stable, training=self._training_notes())
            self.accelerator.print(f"lr held to step {self.step}: weights saved to {stable}; annealing from here")

    def _training_notes(self) -> dict[str, Any]:
        return {"step": self.step, "config": json.loads(self.cfg.model_dump_json())}

    # -- one step -----------------------------------------------------------------------------------
    def loss_on(
        self, items: list[PoolItem], rng: random.Random
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """The step's loss on `items`, and what to log: counts, and each kind's KL as a tensor still on the device
        (reading it here would make the host wait for the forward pass before it could queue the backward)."""
        cfg, lm = self.cfg, self.lm
        device, pad = self.accelerator.device, lm.tokenizer.pad_token_id
        chunks, counts, with_grad = [], [], []
        for item in items:
            pieces = split_into_chunks(item.doc_ids, rng, cfg.max_chunks, cfg.min_chunk_tokens, cfg.max_chunk_tokens)
            chunks += pieces
            counts.append(len(pieces))
            with_grad += choose_grad_chunks([len(p) for p in pieces], item.example.depth, cfg.max_grad_chunks, rng)
        per_doc = split_chunk_loras(self._chunk_loras(chunks, with_grad), counts)
        bias = self.accelerator.unwrap_model(self.net).bias_lora()
        if bias is not None:
            bias_w = split_chunk_loras(bias, [1])[0]
            per_doc = [
                {n: (torch.cat([w[n][0], bias_w[n][0]], 1), torch.cat([w[n][1], bias_w[n][1]], 2)) for n in w}
                for w in per_doc
            ]
        student = pack_with_answers([i.student_prompt for i in items], [i.answer for i in items], pad, device)
        targets = [i.teacher_top for i in items]
        pool_holds_teacher = all(t is not None for t in targets)
        if not pool_holds_teacher:
            teacher = pack_with_answers([i.teacher_prompt for i in items], [i.answer for i in items], pad, device)
            with torch.no_grad():
                teacher_logits = answer_logits(lm.model, teacher)
        with apply_lora(lm.model, stack_for_batch(per_doc), scale=cfg.hypernet.lora_scale):
            student_logits = answer_logits(lm.model, student)
        temperature = cfg.teacher_temperature
        if pool_holds_teacher:  # no forward over the documents at this step
            top_ids, top_logprobs, tails = stack_teacher_top_k(targets, student_logits.shape[1], device)
            kl = binned_token_kl(top_ids, top_logprobs, tails, student_logits)
            sharp = sharpen_targets(top_logprobs, tails, temperature)
            train_kl = kl if temperature == 1.0 else binned_token_kl(top_ids, *sharp, student_logits)
        else:
            kl = token_kl(teacher_logits, student_logits)
            train_kl = kl if temperature == 1.0 else token_kl(teacher_logits / temperature, student_logits)
        kl = kl * student.answer_mask  # (B, A): the KL at temperature 1, logged
        row_kl = kl.detach()
        loss = (train_kl * student.answer_mask).sum() / student.answer_mask.sum().clamp_min(1)
        info: dict[str, float | torch.Tensor] = {"chunks": float(len(chunks)), "max_chunks_doc": float(max(counts))}
        info["grad_chunks"] = float(sum(with_grad))
        # the loss of each data kind, to see which one is being learned; left on the device (read after the step)
        kinds = sorted({item.example.kind for item in items})
        kind_of_row = to_device(torch.tensor([kinds.index(item.example.kind) for item in items]), device)
        answer_lengths = student.answer_mask.sum(1)  # (B,)

        def per_kind(row_values: torch.Tensor) -> torch.Tensor:
            """(B,) values of the rows summed per kind: (len(kinds),)."""
            return row_values.new_zeros(len(kinds)).index_add_(0, kind_of_row, row_values)

        token_counts = per_kind(answer_lengths).clamp_min(1)
        # greedy agreement, blind to the temperature the loss trains at: the share of answer tokens whose likeliest
        # token is the answer's, and of answers right at every token (what greedy decoding gets right)
        hits = answer_hits(student_logits.detach(), student).sum(1)
        whole = (hits == answer_lengths).float()
        means = {
            "kl": per_kind(row_kl.sum(1)) / token_counts,
            "top1": per_kind(hits) / token_counts,
            "exact": per_kind(whole) / per_kind(torch.ones_like(whole)),
        }
        info |= {f"{name}_{kind}": v for name, values in means.items() for kind, v in zip(kinds, values, strict=True)}
        return loss, info

    def _chunk_loras(self, chunks: list[list[int]], with_grad: list[bool]) -> ChunkLoras:
        """The LoRAs of all chunks, in order: differentiable passes over the chunks that get gradients (one, or
        `encode_buckets` of similar length), the rest in gradient-free batches of `encode_batch`, whose activations
        are freed batch by batch."""
        lm, device, pad = self.lm, self.accelerator.device, self.lm.tokenizer.pad_token_id
        grad_idx = [i for i, g in enumerate(with_grad) if g]
        free_idx = [i for i, g in enumerate(with_grad) if not g]
        parts: list[ChunkLoras] = []
        order: list[int] = []  # the chunk behind each row of the parts, concatenated
        for group in self._length_groups(grad_idx, chunks):
            ids, mask = pad_chunks([chunks[i] for i in group], pad, device)
            parts.append(self.net(encode_chunks(lm.model, ids, mask), mask))
            order += group
        net = self.accelerator.unwrap_model(self.net)
        if self.cfg.encode_buckets > 1:
            free_idx.sort(key=lambda i: len(chunks[i]))
        for start in range(0, len(free_idx), self.cfg.encode_batch):
            batch = free_idx[start : start + self.cfg.encode_batch]
            ids, mask = pad_chunks([chunks[i] for i in batch], pad, device)
            with torch.no_grad(), self.accelerator.autocast():
                parts.append(net(encode_chunks(lm.model, ids, mask), mask))
            order += batch
        if len(parts) == 1 and order == list(range(len(order))):
            return parts[0]  # one pass over every chunk, in order
        rows = to_device(torch.tensor(order), device)
        inverse = torch.empty_like(rows)
        inverse[rows] = torch.arange(len(rows), device=device)
        return {
            name: tuple(torch.cat([part[name][k] for part in parts]).index_select(0, inverse) for k in (0, 1))
            for name in parts[0]
        }

    def _length_groups(self, idx: list[int], chunks: list[list[int]]) -> list[list[int]]:
        """`idx` in `cfg.encode_buckets` groups of about as many chunks, by length: each pass pads its chunks to its
        own longest, not the step's (one group of a step's random chunks is ~35% tokens, ~65% padding; four, ~75%)."""
        buckets = min(self.cfg.encode_buckets, len(idx))
        if buckets <= 1:
            return [idx] if idx else []
        by_length = sorted(idx, key=lambda i: len(chunks[i]))
        bounds = [round(b * len(by_length) / buckets) for b in range(buckets + 1)]
        return [by_length[a:b] for a, b in pairwise(bounds) if b > a]

    # -- the pool ---------------------------------------------------------------------------------------
    def _pool_seed(self, step: int | None = None) -> int:
        """The seed of the pool in use at `step` (default: this one): a refreshed pool's seed holds the step it was
        drawn at, so a resumed run draws the pool the interrupted one was training on (after a refresh skipped for
        want of time, the one that refresh would have drawn)."""
        drawn_at = self._drawn_at(self.step if step is None else step)
        return self.cfg.seed * 1000 + self.accelerator.process_index + drawn_at

    def _drawn_at(self, step: int) -> int:
        """The step the pool in use at `step` was drawn at (0 when pools are never refreshed)."""
        refresh = self.cfg.pool_refresh_steps
        return step - step % refresh if refresh else 0

    def _draw(self) -> list[QAExample]:
        """This step's pool's examples, taken from the background drawer when it drew them ahead; with
        `cfg.draw_ahead`, the next refresh's examples are then drawn there while this pool trains."""
        seed = self._pool_seed()
        if self._drawn_ahead is not None and self._drawn_ahead[0] == seed:
            examples = self._drawn_ahead[1].get()
        else:
            examples = draw_examples(self.lm, self.cfg, seed=seed)
        self._drawn_ahead = None
        refresh = self.cfg.pool_refresh_steps
        next_refresh = self._drawn_at(self.step) + refresh if refresh else self.cfg.steps
        if self.cfg.draw_ahead and next_refresh < self.cfg.steps:
            if self._drawer is None:  # spawned, not forked: the parent holds CUDA and tokenizer threads
                self._drawer = multiprocessing.get_context("spawn").Pool(1)
            ahead = self._pool_seed(next_refresh)
            job = self._drawer.apply_async(draw_examples_without_model, (self.lm.tokenizer, self.cfg, ahead))
            self._drawn_ahead = (ahead, job)
        return examples

    def _stop_drawing(self) -> None:
        if self._drawer is not None:
            self._drawer.terminate()
            self._drawer.join()
        self._drawer, self._drawn_ahead = None, None

    def _build_pool(self, log_path: Path) -> tuple[list[PoolItem], float]:
        """Draw and answer a pool, logging how long each half took (drawing is CPU work, answering GPU work;
        drawing is the wait for the background drawer when it drew ahead); returns the pool and the seconds it
        took."""
        acc, started = self.accelerator, time.perf_counter()
        examples = self._draw()
        drawn = time.perf_counter()
        pool = answer_examples(self.lm, self.cfg, examples)
        record = {
            "step": self.step,
            "pool_drawn": len(examples),
            "pool_kept": len(pool),
            "pool_draw_s": drawn - started,
            "pool_teacher_s": time.perf_counter() - drawn,
        }
        acc.print(
            f"pool of {len(pool)} examples ({kind_counts(pool)}) of {len(examples)} drawn at step {self.step}: "
            f"drawing {record['pool_draw_s']:.1f}s, teacher {record['pool_teacher_s']:.1f}s"
        )
        self._log(log_path, record)
        return pool, record["pool_draw_s"] + record["pool_teacher_s"]

    def refresh_fits(self, pool_s: float | None, spent: float) -> bool:
        """Whether a pool taking `pool_s` seconds still leaves time to train on it, `spent` of this run's
        `cfg.time_limit_s` gone: a refresh that would end past the limit only spends the run's last minutes
        drawing examples no step will see."""
        if self.cfg.time_limit_s is None or pool_s is None:
            return True
        return spent + self._slowest(pool_s / self.cfg.time_limit_s) < 1.0  # every process decides alike

    def _slowest(self, share: float) -> float:
        """The largest `share` over all processes, which every process must act on alike; with one process the
        share itself, with no round trip through the device (it would wait for every kernel queued)."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return share
        return acc.gather(torch.tensor([share], device=acc.device)).max().item()

    def _log(self, log_path: Path, record: dict[str, Any]) -> None:
        """One line of log.jsonl, written by the main process only."""
        if self.accelerator.is_main_process:
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    # -- the loop -----------------------------------------------------------------------------------
    def fit(self, pool: list[PoolItem] | None = None, until: int | None = None) -> list[dict[str, float]]:
        """Train to `cfg.steps` (or stop early after step `until`, e.g. to test resuming, or after
        `cfg.time_limit_s`; running again resumes from the saved state)."""
        profiler = StepProfiler(self.out_dir, self.cfg.profile_at, self.cfg.profile_steps)
        try:
            with sdpa_kernel(TRAINING_ATTENTION):
                return self._train(pool, until, profiler)
        finally:  # a pool drawn ahead for a refresh that will not come is not waited for
            profiler.close()
            self._stop_drawing()

    def _train(self, pool: list[PoolItem] | None, until: int | None, profiler: StepProfiler) -> list[dict[str, float]]:
        cfg, acc = self.cfg, self.accelerator
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.out_dir / "log.jsonl"
        pool_s: float | None = None  # how long drawing and answering a pool takes here (None: one was given)
        if pool is None:
            pool, pool_s = self._build_pool(log_path)
        history: list[dict[str, float]] = []
        start = time.perf_counter()
        last = min(cfg.steps, until) if until is not None else cfg.steps
        spent = 0.0  # share of cfg.time_limit_s this run has used, agreed by every process
        while self.step < last:
            if cfg.pool_refresh_steps and self.step and self.step % cfg.pool_refresh_steps == 0:
                if self.refresh_fits(pool_s, spent):
                    pool, pool_s = self._build_pool(log_path)
                else:
                    self._log(log_path, {"step": self.step, "pool_refresh_skipped_s": pool_s})
                    acc.print(
                        f"pool refresh at step {self.step} skipped: one takes ~{pool_s:.0f}s and {spent:.0%} of "
                        f"the time limit is spent; training goes on with the pool in use"
                    )
            rng = random.Random(cfg.seed * 1_000_003 + self.step * 97 + acc.process_index)
            if acc.is_main_process:
                profiler.before_step(self.step)
            self.net.train()
            losses, info = [], {}
            for _ in range(cfg.grad_accum):
                items = rng.sample(pool, min(cfg.batch_size, len(pool)))
                loss, info = self.loss_on(items, rng)
                acc.backward(loss / cfg.grad_accum)
                losses.append(loss.detach())
            grad_norm = acc.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            if acc.is_main_process:
                profiler.after_step(self.step)
            elapsed = time.perf_counter() - start
            out_of_time = False
            if cfg.time_limit_s is not None:  # every process must stop at the same step and anneal alike
                spent = self._slowest(elapsed / cfg.time_limit_s)
                self.time_progress = max(self.time_progress, min(1.0, spent))
                out_of_time = spent >= 1.0
            if cfg.anneal_share is not None and self.time_progress >= 1 - cfg.anneal_share:
                self._save_stable()
            self.scheduler.step()
            total = float(torch.stack(losses).mean())  # the step's one wait for the device, its work all queued
            record = {
                "step": self.step,
                "loss": total,
                "grad_norm": float(grad_norm),
                "lr": self.scheduler.get_last_lr()[0],
                "elapsed_s": elapsed,
                **{name: float(value) for name, value in info.items()},
            }
            if torch.cuda.is_available():
                record["gpu_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
            history.append(record)
            final = self.step == cfg.steps or out_of_time
            if self.step % cfg.log_every == 0 or final:
                self._log(log_path, record)
                acc.print(
                    f"step {self.step} loss {total:.4f} gnorm {float(grad_norm):.3f} "
                    f"lr {record['lr']:.2e} chunks {info.get('chunks', 0):.0f} {record['elapsed_s']:.0f}s"
                )
            if self.step % cfg.eval_every == 0 or (cfg.eval_at_end and final):
                self.evaluate(log_path)
            if self.step % cfg.save_every == 0 or final:
                self.save()
            if out_of_time:
                acc.print(f"time limit of {cfg.time_limit_s:.0f}s reached at step {self.step}; saved")
                break
        return history

    def evaluate(self, log_path: Path | None = None) -> dict[str, Any]:
        from d2l_rag.training.evaluate import facts_eval, niah_eval

        if not self.accelerator.is_main_process:
            return {}
        net = self.accelerator.unwrap_model(self.net)
        net.eval()
        loaded = LoadedHypernetwork(
            net, CheckpointConfig(hypernet=self.cfg.hypernet, base=self.lm.fingerprint), f"training-{self.step}"
        )
        with torch.no_grad(), self.accelerator.autocast():
            niah = niah_eval(self.lm, loaded, self.cfg.eval_lengths, self.cfg.eval_examples, modes=("adapter",))
            facts = facts_eval(self.lm, loaded, self.cfg.eval_lengths[:1], self.cfg.eval_examples, modes=("adapter",))
            words = None
            if self.cfg.mix.word_needle:  # what the run trains for: held-out magic words
                lengths, n = self.cfg.eval_lengths[:1], self.cfg.eval_examples
                words = niah_eval(self.lm, loaded, lengths, n, modes=("adapter",), magic="word")
        net.train()
        scored = {"eval_niah": niah, "eval_facts": facts} | ({"eval_words": words} if words is not None else {})
        summary = {key: {k: v["accuracy"] for k, v in result["adapter"].items() if v} for key, result in scored.items()}
        self.accelerator.print(f"eval step {self.step}: {summary}")
        if log_path is not None:
            self._log(log_path, {"step": self.step, **summary})
        return {"niah": niah, "facts": facts} | ({"words": words} if words is not None else {})
