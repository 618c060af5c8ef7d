"""`D2LAnswerRunnable`: `{"question", "doc_id"}` in, answer out — one LCEL step for `retriever | prompt | llm`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable

from d2l_rag.errors import InvalidInputError
from d2l_rag.internalizer import DocumentInternalizer
from langchain_d2l.chat_models import D2LChatModel

__all__ = ["D2LAnswerRunnable"]

_INPUT_KEYS = {"question", "doc_id", "doc_ids"}


class D2LAnswerRunnable(RunnableSerializable[dict[str, Any] | str, AIMessage]):
    """Answer `{"question": ..., "doc_id": ...}` (or `"doc_ids": [...]`) from the document's adapter.

    Replaces the three steps of a RAG chain — retriever, prompt, LLM — with one. The output is an `AIMessage`,
    exactly what `retriever | prompt | llm` returned, so a trailing `StrOutputParser()` and any code reading
    `response_metadata` keep working; `response_metadata["doc_ids"]` and `["mode"]` say what answered. A bare
    string input, or a mapping without `doc_id`/`doc_ids`, answers from the chat model's own `doc_id`/`doc_ids`,
    or, when it has none either, from the document the internalizer's router picks.

    Instantiate:
        answer = D2LAnswerRunnable.from_internalizer(internalizer)
        # or D2LAnswerRunnable(llm=D2LChatModel(internalizer=internalizer, max_tokens=64))

    Invoke:
        chain = answer | StrOutputParser()
        chain.invoke({"question": "Who approves travel?", "doc_id": "handbook"})

    Stream:
        for chunk in answer.stream({"question": "...", "doc_id": "handbook"}): print(chunk.content, end="")
    """

    llm: D2LChatModel
    """The chat model that answers; its own `doc_id`/`doc_ids` are used when the input names none."""

    @classmethod
    def from_internalizer(cls, internalizer: DocumentInternalizer, **llm_fields: Any) -> D2LAnswerRunnable:
        return cls(llm=D2LChatModel(internalizer=internalizer, **llm_fields))

    @property
    def InputType(self) -> type:
        return dict

    @property
    def OutputType(self) -> type[AIMessage]:
        return AIMessage

    def invoke(self, input: dict[str, Any] | str, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        def answer(value: dict[str, Any] | str, config: RunnableConfig) -> AIMessage:
            question, target = _parse_input(value)  # the chat model's run nests under this chain's run
            return self.llm.invoke([HumanMessage(question)], config, **target, **kwargs)

        return self._call_with_config(answer, input, config, run_type="chain")

    async def ainvoke(
        self, input: dict[str, Any] | str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AIMessage:
        question, target = _parse_input(input)
        return await self.llm.ainvoke([HumanMessage(question)], config, **target, **kwargs)

    def stream(
        self, input: dict[str, Any] | str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AIMessageChunk]:
        question, target = _parse_input(input)
        yield from self.llm.stream([HumanMessage(question)], config, **target, **kwargs)

    async def astream(
        self, input: dict[str, Any] | str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        question, target = _parse_input(input)
        async for chunk in self.llm.astream([HumanMessage(question)], config, **target, **kwargs):
            yield chunk


def _parse_input(value: Mapping[str, Any] | str) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"D2LAnswerRunnable takes a question string or a mapping with 'question' and 'doc_id'/'doc_ids', "
            f"got {type(value).__name__}"
        )
    if "question" not in value:
        raise InvalidInputError(f"D2LAnswerRunnable input needs a 'question' key; got keys {sorted(value)}")
    unknown = set(value) - _INPUT_KEYS
    if unknown:
        raise InvalidInputError(
            f"D2LAnswerRunnable input has unknown keys {sorted(unknown)}; use {sorted(_INPUT_KEYS)}"
        )
    question = value["question"]
    if not isinstance(question, str):
        raise InvalidInputError(f"'question' must be a string, got {type(question).__name__}")
    target = {key: value[key] for key in ("doc_id", "doc_ids") if value.get(key) is not None}
    if "doc_ids" in target:
        target["doc_ids"] = list(target["doc_ids"])
    return question, target
