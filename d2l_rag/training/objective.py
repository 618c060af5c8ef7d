"""KL(teacher || student) over the answer tokens.

Teacher: frozen base, `[document + question]` in context. Student: the same base with the generated adapter
and only `[question]`. Both score the teacher's own answer; only the hypernetwork receives gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PackedAnswers", "answer_logits", "kl_on_answers", "pack_with_answers", "token_kl"]


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
    return PackedAnswers(ids.to(device), mask.to(device), positions.to(device), answer_mask.to(device))


def answer_logits(model: nn.Module, packed: PackedAnswers) -> torch.Tensor:
    """Logits only at answer positions: (B, A, vocab). Skips the LM head elsewhere (most of the memory)."""
    backbone = getattr(model, model.base_model_prefix)
    hidden = backbone(input_ids=packed.ids, attention_mask=packed.mask, use_cache=False).last_hidden_state
    picked = hidden.gather(1, packed.positions[..., None].expand(-1, -1, hidden.shape[-1]))  # (B, A, H)
    return model.lm_head(picked).float()


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
