"""KL(teacher || student) over the answer tokens.

Teacher: frozen base, `[document + question]` in context. Student: the same base with the generated adapter
and only `[question]`. Both score the teacher's own answer; only the hypernetwork receives gradients.

The teacher's side never changes during training, so a pool can hold it once (`TeacherTopK`, its k most likely
tokens at each answer position) instead of a forward over document and question at every step
(`binned_token_kl`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from d2l_rag.model.device_copy import to_device

__all__ = [
    "PackedAnswers",
    "TeacherTopK",
    "answer_hits",
    "answer_logits",
    "binned_token_kl",
    "kl_on_answers",
    "pack_with_answers",
    "sharpen_targets",
    "stack_teacher_top_k",
    "teacher_top_k",
    "token_kl",
]

PAD_LOGPROB = -1e4  # a padded position's "log-probability": exp() is 0 and, unlike -inf, 0 * it is 0, not nan


@dataclass
class PackedAnswers:
    """Right-padded prompt+answer rows and where each answer token is predicted from."""

    ids: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T)
    positions: torch.Tensor  # (B, A): index of the logit that predicts answer token j
    answer_mask: torch.Tensor  # (B, A): 1 where row b has an answer token j


def pack_with_answers(
    prompts: Sequence[list[int]], answers: Sequence[list[int]], pad_id: int, device: torch.device
) -> PackedAnswers:
    rows = [p + a for p, a in zip(prompts, answers, strict=True)]
    T = max(len(r) for r in rows)
    A = max(1, max(len(a) for a in answers))
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    positions = torch.zeros((len(rows), A), dtype=torch.long)
    answer_mask = torch.zeros((len(rows), A), dtype=torch.float32)
    for b, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        ids[b, : len(p) + len(a)] = torch.tensor(p + a)
        mask[b, : len(p) + len(a)] = 1
        positions[b, : len(a)] = torch.arange(len(p) - 1, len(p) + len(a) - 1)
        answer_mask[b, : len(a)] = 1
    return PackedAnswers(*(to_device(t, device) for t in (ids, mask, positions, answer_mask)))


def answer_logits(model: nn.Module, packed: PackedAnswers) -> torch.Tensor:
    """Logits only at answer positions: (B, A, vocab). Skips the LM head elsewhere (most of the memory)."""
    backbone = getattr(model, model.base_model_prefix)
    hidden = backbone(input_ids=packed.ids, attention_mask=packed.mask, use_cache=False).last_hidden_state
    picked = hidden.gather(1, packed.positions[..., None].expand(-1, -1, hidden.shape[-1]))  # (B, A, H)
    return model.lm_head(picked).float()


def answer_hits(student_logits: torch.Tensor, packed: PackedAnswers) -> torch.Tensor:
    """1 where the student's likeliest token is the answer's token, else 0: (B, A), 0 past a row's answer.

    The answer is the teacher's greedy one, so a row hit at every token is one greedy decoding reproduces word for
    word: what the ship test counts, which the KL at any temperature only tracks from afar."""
    answer_ids = packed.ids.gather(1, packed.positions + 1)
    return (student_logits.argmax(-1) == answer_ids).float() * packed.answer_mask


def token_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher || p_student) at every answer position: (B, A)."""
    t = F.log_softmax(teacher_logits, dim=-1)
    s = F.log_softmax(student_logits, dim=-1)
    return (t.exp() * (t - s)).sum(-1)


def kl_on_answers(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, answer_mask: torch.Tensor
) -> torch.Tensor:
    """Mean over answer tokens of KL(p_teacher || p_student)."""
    kl = token_kl(teacher_logits, student_logits)
    return (kl * answer_mask).sum() / answer_mask.sum().clamp_min(1)


@dataclass(frozen=True)
class TeacherTopK:
    """One answer's teacher targets: the k most likely tokens at each answer position, their log-probabilities,
    and the log-probability of every other token together (the tail)."""

    ids: torch.Tensor  # (A, k) long
    logprobs: torch.Tensor  # (A, k) float32
    tail_logprob: torch.Tensor  # (A,) float32


def teacher_top_k(teacher_logits: torch.Tensor, answer_mask: torch.Tensor, k: int) -> list[TeacherTopK]:
    """Each row's targets from `answer_logits` of the teacher, cut to the row's answer length, on the CPU."""
    logprobs = F.log_softmax(teacher_logits.float(), dim=-1)
    top_logprobs, top_ids = logprobs.topk(k, dim=-1)  # (B, A, k)
    tail = _rest_logprob(logprobs, top_ids)  # (B, A)
    lengths = answer_mask.sum(1).long().tolist()
    return [
        TeacherTopK(top_ids[b, :n].cpu(), top_logprobs[b, :n].cpu(), tail[b, :n].cpu()) for b, n in enumerate(lengths)
    ]


def stack_teacher_top_k(
    targets: Sequence[TeacherTopK], answer_len: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, A, k) ids, (B, A, k) log-probabilities and (B, A) tails, positions past a row's answer padded."""
    k = targets[0].ids.shape[1]
    ids = torch.zeros((len(targets), answer_len, k), dtype=torch.long)
    logprobs = torch.full((len(targets), answer_len, k), PAD_LOGPROB)
    tails = torch.full((len(targets), answer_len), PAD_LOGPROB)
    for b, t in enumerate(targets):
        n = t.ids.shape[0]
        ids[b, :n], logprobs[b, :n], tails[b, :n] = t.ids, t.logprobs, t.tail_logprob
    return to_device(ids, device), to_device(logprobs, device), to_device(tails, device)


def binned_token_kl(
    top_ids: torch.Tensor, top_logprobs: torch.Tensor, tail_logprob: torch.Tensor, student_logits: torch.Tensor
) -> torch.Tensor:
    """KL(teacher || student) at every answer position, (B, A), over k+1 outcomes: the teacher's top k tokens
    and the tail. It never exceeds the full KL and equals it as the teacher's tail mass goes to 0."""
    s = F.log_softmax(student_logits.float(), dim=-1)
    s_top = s.gather(-1, top_ids)
    s_tail = _rest_logprob(s, top_ids)
    top = (top_logprobs.exp() * (top_logprobs - s_top)).sum(-1)
    return top + tail_logprob.exp() * (tail_logprob - s_tail)


def sharpen_targets(
    top_logprobs: torch.Tensor, tail_logprob: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held targets at a temperature: p ** (1 / temperature) over the k + 1 outcomes of `binned_token_kl`,
    renormalised, so a temperature < 1 puts more of the target on the teacher's likeliest tokens (a value's exact
    digits) than the student's blur of them. Padded positions stay padded; temperature 1 returns them unchanged."""
    if temperature == 1.0:
        return top_logprobs, tail_logprob
    joint = (torch.cat([top_logprobs, tail_logprob[..., None]], -1) / temperature).log_softmax(-1)
    padded = top_logprobs <= PAD_LOGPROB
    top = torch.where(padded, PAD_LOGPROB, joint[..., :-1])
    tail = torch.where(tail_logprob <= PAD_LOGPROB, PAD_LOGPROB, joint[..., -1])
    return top, tail


def _rest_logprob(logprobs: torch.Tensor, top_ids: torch.Tensor) -> torch.Tensor:
    """The log-probability of every token but `top_ids` together, floored at PAD_LOGPROB (-inf when k = vocab)."""
    return logprobs.scatter(-1, top_ids, float("-inf")).logsumexp(-1).clamp_min(PAD_LOGPROB)
