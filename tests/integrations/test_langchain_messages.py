"""Pure helpers of langchain_d2l: messages -> question, and stop sequences (no model needed)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_d2l._messages import cut_stream_at_stop, messages_to_request, truncate_at_stop

from d2l_rag.errors import InvalidInputError


def test_last_human_message_is_the_question_and_system_messages_the_system_prompt() -> None:
    request = messages_to_request(
        [
            SystemMessage("Be brief."),
            HumanMessage("hello"),
            AIMessage("hi"),
            SystemMessage("Be kind."),
            HumanMessage("What is the code name?"),
        ]
    )
    assert request.question == "What is the code name?"
    assert request.system_prompt == "Be brief.\n\nBe kind."


def test_trailing_human_messages_are_joined_and_history_is_optional() -> None:
    messages = [HumanMessage("hello"), AIMessage("hi there"), HumanMessage("One more thing."), HumanMessage("Why?")]
    assert messages_to_request(messages).question == "One more thing.\nWhy?"
    assert messages_to_request(messages).system_prompt is None
    with_history = messages_to_request(messages, include_history=True).question
    assert with_history == "User: hello\nAssistant: hi there\nUser: One more thing.\nWhy?"


def test_text_blocks_are_read_and_other_blocks_refused() -> None:
    blocks = HumanMessage(content=[{"type": "text", "text": "What is"}, {"type": "text", "text": " it?"}])
    assert messages_to_request([blocks]).question == "What is it?"
    image = HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png"}])
    with pytest.raises(InvalidInputError, match="text only"):
        messages_to_request([image])


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "at least one message"),
        ([HumanMessage("q"), AIMessage("a")], "ends with a 'ai' message"),
        ([HumanMessage("q"), ToolMessage("42", tool_call_id="1"), HumanMessage("q")], "no tool calling"),
        ([SystemMessage("s"), HumanMessage("   ")], "empty"),
    ],
)
def test_unusable_conversations_are_clear_errors(messages: list, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        messages_to_request(messages)


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("The code name is Bluefin.", ["is"], "The code name "),
        ("The code name is Bluefin.", ["Blue", "code"], "The "),
        ("The code name is Bluefin.", ["absent"], "The code name is Bluefin."),
        ("The code name is Bluefin.", [], "The code name is Bluefin."),
        ("The code name is Bluefin.", None, "The code name is Bluefin."),
        ("The code name is Bluefin.", [""], "The code name is Bluefin."),
    ],
)
def test_truncate_at_stop(text: str, stop: list[str] | None, expected: str) -> None:
    assert truncate_at_stop(text, stop) == expected


@pytest.mark.parametrize(
    "pieces",
    [
        [" The code", " name is", " Blue", "fin."],
        [" T", "he code name i", "s Bl", "uefin", "."],
        ["  ", "The code name is Bluefin."],
    ],
)
@pytest.mark.parametrize("stop", [["is B"], ["Bluefin", "name"], ["missing"], None])
def test_streamed_cut_equals_truncated_full_text(pieces: list[str], stop: list[str] | None) -> None:
    full = "".join(pieces).lstrip()
    assert "".join(cut_stream_at_stop(iter(pieces), stop)) == truncate_at_stop(full, stop)


def test_stream_is_drained_after_a_stop() -> None:
    consumed = []

    def pieces():
        for piece in ["a", "b STOP", "c", "d"]:
            consumed.append(piece)
            yield piece

    assert "".join(cut_stream_at_stop(pieces(), ["STOP"])) == "ab "
    assert consumed == ["a", "b STOP", "c", "d"]  # the generation thread is allowed to finish
