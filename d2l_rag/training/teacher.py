"""The teacher: the frozen base model with the document in context, answering greedily in big batches.

Targets are the teacher's *own* answers, never the bare ground truth: distilling "4821" when the teacher
says "The special magic number is 4821." drives the KL down while free generation fails (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from d2l_rag.generation import GREEDY, chat_messages, left_pad
from d2l_rag.model.base import FrozenLM
from d2l_rag.training.objective import TeacherTopK, answer_logits, pack_with_answers, teacher_top_k

__all__ = ["answer_targets", "chat_prompt_ids", "greedy_answers", "written_answer_ids"]


def chat_prompt_ids(lm: FrozenLM, question: str, context: str | None = None) -> list[int]:
    """Chat-template ids of the user turn plus the assistant header; the library's in-context format."""
    out = lm.tokenizer.apply_chat_template(
        chat_messages(question, context), add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(out["input_ids"])


def _eos_ids(lm: FrozenLM) -> list[int]:
    eos = lm.model.generation_config.eos_token_id
    return eos if isinstance(eos, list) else [eos if eos is not None else lm.tokenizer.eos_token_id]


def written_answer_ids(lm: FrozenLM, text: str) -> list[int]:
    """A written answer's tokens ending with EOS, the form `greedy_answers` returns."""
    return [*lm.tokenizer(text, add_special_tokens=False)["input_ids"], _eos_ids(lm)[0]]


@torch.no_grad()
def greedy_answers(lm: FrozenLM, prompts: Sequence[list[int]], max_new_tokens: int, batch_size: int) -> list[list[int]]:
    """Greedy continuations (ending with EOS when one is produced), batched by similar prompt length."""
    pad = lm.tokenizer.pad_token_id
    eos_ids = set(_eos_ids(lm))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[list[int]] = [[] for _ in prompts]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids, mask = left_pad([prompts[i] for i in rows], pad)
        longest = ids.shape[1]
        out = lm.model.generate(
            input_ids=ids.to(lm.device),
            attention_mask=mask.to(lm.device),
            max_new_tokens=max_new_tokens,
            **GREEDY,
            pad_token_id=pad,
        )
        for j, i in enumerate(rows):
            tokens = []
            for t in out[j, longest:].tolist():
                tokens.append(t)
                if t in eos_ids:
                    break
            answers[i] = tokens
    return answers


@torch.no_grad()
def answer_targets(
    lm: FrozenLM, prompts: Sequence[list[int]], answers: Sequence[list[int]], k: int, batch_size: int
) -> list[TeacherTopK]:
    """The teacher's top-k targets on each prompt's answer: the forward a training step would make over document,
    question and answer, made once for the pool, batched by similar length."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(answers[i]))
    pad = lm.tokenizer.pad_token_id
    targets: dict[int, TeacherTopK] = {}
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        packed = pack_with_answers([prompts[i] for i in rows], [answers[i] for i in rows], pad, lm.device)
        targets.update(zip(rows, teacher_top_k(answer_logits(lm.model, packed), packed.answer_mask, k), strict=True))
    return [targets[i] for i in range(len(prompts))]
