"""Turning LlamaIndex chat messages into what `DocumentInternalizer` answers: a question and a system prompt."""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from d2l_rag.errors import InvalidInputError

__all__ = ["messages_to_question"]


def messages_to_question(messages: Sequence[ChatMessage]) -> tuple[str, str | None]:
    """(question, system prompt): the trailing user message(s) and the joined system messages.

    Earlier user/assistant turns are dropped: each question is answered from the document alone, as a query
    engine would. A conversation that does not end with a user message is an error.
    """
    if not messages:
        raise InvalidInputError("D2LLLM.chat needs at least one message, got an empty list")
    if messages[-1].role != MessageRole.USER:
        raise InvalidInputError(
            f"D2LLLM answers a user question; the conversation ends with a {messages[-1].role.value!r} message"
        )
    system = [m.content or "" for m in messages if m.role == MessageRole.SYSTEM]
    trailing: list[str] = []
    for message in reversed(messages):
        if message.role != MessageRole.USER:
            break
        trailing.insert(0, message.content or "")
    question = "\n".join(trailing)
    if not question.strip():
        raise InvalidInputError("the last user message is empty")
    return question, ("\n\n".join(system) if system else None)
