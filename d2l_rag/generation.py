"""Answering questions with the chat template: with an adapter (question only), in context, or bare.

One code path for all three: `answer_batch` left-pads the prompts, stacks one adapter per row (zero rows
for none) and calls `generate` inside `apply_lora`. `answer` is a batch of one; `stream` runs the same
call in a thread feeding a `TextIteratorStreamer`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from d2l_rag.adapters.compose import stack_for_batch
from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.config import GenerationConfig
from d2l_rag.errors import AdapterMismatchError, InvalidInputError
from d2l_rag.model.base import FrozenLM
from d2l_rag.model.lora_apply import apply_lora

__all__ = ["GREEDY", "Answer", "Generator", "chat_messages", "check_question", "in_context_user_message", "left_pad"]


@dataclass(frozen=True)
class Answer:
    """A generated answer and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


def in_context_user_message(question: str, context: str | None) -> str:
    """The user turn: the document (if any) then the question. Training's teacher uses exactly this."""
    return question if context is None else f"{context}\n\n{question}"


def chat_messages(question: str, context: str | None = None, system_prompt: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": in_context_user_message(question, context)}]


def check_question(question: Any) -> str:
    if not isinstance(question, str):
        raise InvalidInputError(f"question must be str, got {type(question).__name__}")
    if not question.strip():
        raise InvalidInputError("question is empty or whitespace only")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"question is not valid Unicode: lone surrogate at index {exc.start}") from exc
    return question


# Greedy decoding for `generate`; the sampling knobs are unset so transformers does not warn about them.
GREEDY: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


def left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of shape (rows, longest), left-padded: every row's next token is at the same position."""
    longest = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, longest - len(p) :] = torch.tensor(p)
        mask[i, longest - len(p) :] = 1
    return ids, mask


class Generator:
    """Greedy (by default) chat generation on a `FrozenLM`, optionally through per-row adapters."""

    def __init__(self, lm: FrozenLM, config: GenerationConfig | None = None) -> None:
        self.lm = lm
        self.config = config or GenerationConfig()

    def prompt_ids(self, question: str, context: str | None = None) -> list[int]:
        messages = chat_messages(check_question(question), context, self.config.system_prompt)
        ids = self.lm.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(ids["input_ids"])

    def _check_adapter(self, adapter: DocumentAdapter | None) -> None:
        if adapter is not None and adapter.base_fingerprint != self.lm.fingerprint.id:
            raise AdapterMismatchError(
                f"adapter for {adapter.doc_ids or 'a document'} was made for base model {adapter.base_fingerprint}, "
                f"but this generator runs {self.lm.fingerprint.id}"
            )

    def _inputs(self, prompts: list[list[int]], config: GenerationConfig) -> tuple[torch.Tensor, torch.Tensor]:
        window = self.lm.context_window
        longest = max(len(p) for p in prompts)
        if longest + config.max_new_tokens > window:
            raise InvalidInputError(
                f"prompt of {longest} tokens + {config.max_new_tokens} new tokens exceeds the model window of {window}"
            )
        ids, mask = left_pad(prompts, self.lm.tokenizer.pad_token_id)
        return ids.to(self.lm.device), mask.to(self.lm.device)

    def _generate_kwargs(self, config: GenerationConfig) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "do_sample": config.do_sample,
            "repetition_penalty": config.repetition_penalty,
            "num_beams": config.num_beams,
            "pad_token_id": self.lm.tokenizer.pad_token_id,
        }
        if config.num_beams > 1:  # stop once `num_beams` answers have ended, not after max_new_tokens: ~6x less time
            kwargs["early_stopping"] = True
        if config.do_sample:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(GREEDY)
        return kwargs

    def adapter_context(self, adapters: Sequence[DocumentAdapter | None], beams: int = 1):
        """A context in which row i of a batch runs with adapters[i] (None = the bare model).

        With beam search, `generate` runs `beams` rows per prompt (`repeat_interleave` order), so each adapter's
        row is repeated the same way.
        """
        if all(a is None for a in adapters):
            return nullcontext()
        for adapter in adapters:
            self._check_adapter(adapter)
        first = next(a for a in adapters if a is not None)
        stacked = stack_for_batch([None if a is None else a.to(self.lm.device).weights for a in adapters])
        if beams > 1:
            stacked = {
                name: (a.repeat_interleave(beams, 0), b.repeat_interleave(beams, 0)) for name, (a, b) in stacked.items()
            }
        return apply_lora(self.lm.model, stacked, scale=first.scale)

    @torch.no_grad()
    def answer_batch(
        self,
        questions: Sequence[str],
        adapters: Sequence[DocumentAdapter | None] | None = None,
        contexts: Sequence[str | None] | None = None,
        config: GenerationConfig | None = None,
    ) -> list[Answer]:
        """Answer many questions in one batch; row i uses adapters[i] and contexts[i] (None = none)."""
        config = config or self.config
        n = len(questions)
        adapters = list(adapters) if adapters is not None else [None] * n
        contexts = list(contexts) if contexts is not None else [None] * n
        if not (len(adapters) == len(contexts) == n) or n == 0:
            raise InvalidInputError(
                f"{n} questions, {len(adapters)} adapters, {len(contexts)} contexts: need equal, > 0"
            )
        scales = {a.scale for a in adapters if a is not None}
        if len(scales) > 1:
            raise InvalidInputError(f"adapters in one batch must share a scale, got {sorted(scales)}")
        prompts = [self.prompt_ids(q, c) for q, c in zip(questions, contexts, strict=True)]
        ids, mask = self._inputs(prompts, config)
        start = time.perf_counter()
        with self.adapter_context(adapters, config.num_beams):
            out = self.lm.model.generate(input_ids=ids, attention_mask=mask, **self._generate_kwargs(config))
        return self.decoded(out[:, ids.shape[1] :], prompts, time.perf_counter() - start)

    def decoded(self, new: torch.Tensor, prompts: Sequence[list[int]], seconds: float) -> list[Answer]:
        """One `Answer` a row of `new` (the generated tokens, padding dropped) for the prompt of that row."""
        answers = []
        for row, prompt in zip(new.tolist(), prompts, strict=True):
            tokens = [t for t in row if t != self.lm.tokenizer.pad_token_id]
            text = self.lm.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            answers.append(Answer(text=text, prompt_tokens=len(prompt), completion_tokens=len(tokens), seconds=seconds))
        return answers

    def answer(
        self,
        question: str,
        adapter: DocumentAdapter | None = None,
        context: str | None = None,
        config: GenerationConfig | None = None,
    ) -> Answer:
        return self.answer_batch([question], [adapter], [context], config)[0]

    def stream(
        self,
        question: str,
        adapter: DocumentAdapter | None = None,
        context: str | None = None,
        config: GenerationConfig | None = None,
    ) -> Iterator[str]:
        """Yield text pieces as they are generated (greedy by default, same output as `answer`).

        Beam search knows its answer only when every beam has finished, so it yields that answer in one piece.
        """
        from transformers import TextIteratorStreamer

        config = config or self.config
        if config.num_beams > 1:
            yield self.answer(question, adapter, context, config).text
            return
        ids, mask = self._inputs([self.prompt_ids(question, context)], config)
        self._check_adapter(adapter)
        streamer = TextIteratorStreamer(self.lm.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.no_grad(), self.adapter_context([adapter]):
                    self.lm.model.generate(
                        input_ids=ids, attention_mask=mask, streamer=streamer, **self._generate_kwargs(config)
                    )
            except BaseException as exc:  # surfaced in the consumer thread below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from (piece for piece in streamer if piece)
        thread.join()
        if errors:
            raise errors[0]
