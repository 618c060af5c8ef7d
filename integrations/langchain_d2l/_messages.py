"""Translating LangChain messages and `stop` sequences for a question-only answerer.

`DocumentInternalizer` answers one question at a time, with the document's adapter instead of a retrieved context.
A chat history is therefore reduced to: the question (the trailing human turn), an optional system prompt, and,
only when asked for, the earlier turns written out as a transcript in front of the question.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from d2l_rag.errors import InvalidInputError

__all__ = ["ChatRequest", "cut_stream_at_stop", "messages_to_request", "truncate_at_stop"]


@dataclass(frozen=True)
class ChatRequest:
    """What a list of messages asks the internalizer: a question and an optional system prompt."""

    question: str
    system_prompt: str | None


def _text_of(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    kinds = {block.get("type") for block in message.content if isinstance(block, dict)}
    if kinds - {"text"}:
        raise InvalidInputError(
            f"D2LChatModel reads text only; a {message.type!r} message holds {sorted(k for k in kinds if k)} blocks"
        )
    return message.text


def messages_to_request(messages: Sequence[BaseMessage], include_history: bool = False) -> ChatRequest:
    """The trailing human message(s) become the question; system messages become the system prompt.

    Earlier human/AI turns are dropped unless `include_history` is set, in which case they are written before the
    question as `User: ...` / `Assistant: ...` lines. Tool messages are refused: the model has no tool calling.
    """
    if not messages:
        raise InvalidInputError("D2LChatModel needs at least one message, got an empty list")
    if not isinstance(messages[-1], HumanMessage):
        raise InvalidInputError(
            f"D2LChatModel answers a human question; the conversation ends with a {messages[-1].type!r} message"
        )
    system = [_text_of(m) for m in messages if isinstance(m, SystemMessage)]
    turns = [m for m in messages if not isinstance(m, SystemMessage)]
    for message in turns:
        if not isinstance(message, HumanMessage | AIMessage):
            raise InvalidInputError(f"D2LChatModel has no tool calling; got a {message.type!r} message")
    first_question = len(turns)
    while first_question > 0 and isinstance(turns[first_question - 1], HumanMessage):
        first_question -= 1
    question = "\n".join(_text_of(m) for m in turns[first_question:])
    if include_history and first_question > 0:
        transcript = "\n".join(
            f"{'User' if isinstance(m, HumanMessage) else 'Assistant'}: {_text_of(m)}" for m in turns[:first_question]
        )
        question = f"{transcript}\nUser: {question}"
    if not question.strip():
        raise InvalidInputError("the last human message is empty")
    return ChatRequest(question, "\n\n".join(system) if system else None)


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """`text` up to (not including) the earliest stop sequence."""
    cut = min((i for s in stop or () if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def cut_stream_at_stop(pieces: Iterable[str], stop: Sequence[str] | None) -> Iterator[str]:
    """Yield `pieces` up to the earliest stop sequence, then drain the rest without yielding it.

    Text that could be the start of a stop sequence is held back until the next piece decides it. Draining lets
    the generation thread finish (and the answer's token counts be computed) instead of running on unobserved.
    Leading whitespace of the whole answer is dropped, as the non-streaming answer strips it.
    """
    stops = [s for s in stop or () if s]
    hold = max((len(s) for s in stops), default=1) - 1
    buffer, started, stopped = "", False, False
    for piece in pieces:
        if stopped:
            continue
        buffer += piece
        if not started:
            buffer = buffer.lstrip()
            started = bool(buffer)
        cut = truncate_at_stop(buffer, stops)
        if len(cut) < len(buffer):
            stopped = True
            if cut:
                yield cut
            buffer = ""
            continue
        ready = len(buffer) - hold if stops else len(buffer)
        if ready > 0:
            yield buffer[:ready]
            buffer = buffer[ready:]
    if buffer and not stopped:
        yield buffer
