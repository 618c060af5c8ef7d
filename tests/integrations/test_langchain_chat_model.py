"""`D2LChatModel` and `D2LAnswerRunnable` beyond the standard suites: targets, metadata, stop, routing, fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_d2l import D2LAnswerRunnable, D2LChatModel
from pydantic import ValidationError

from d2l_rag.errors import InvalidInputError, UnknownDocumentError
from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.model import FrozenLM

METADATA_KEYS = {"doc_ids", "mode", "fallback_reason", "timings", "model_name", "prompt_tokens", "completion_tokens"}


# -- tiny random Llama: plumbing ----------------------------------------------------------------------
def test_target_is_validated_at_construction(tiny_internalizer: DocumentInternalizer) -> None:
    with pytest.raises(ValidationError, match="not both"):
        D2LChatModel(internalizer=tiny_internalizer, doc_id="project", doc_ids=["harbor"])
    with pytest.raises(ValidationError, match="doc_ids is empty"):
        D2LChatModel(internalizer=tiny_internalizer, doc_ids=[])
    with pytest.raises(ValidationError):
        D2LChatModel(internalizer=tiny_internalizer, max_tokens=0)


def test_metadata_usage_and_per_call_target(tiny_internalizer: DocumentInternalizer) -> None:
    llm = D2LChatModel(internalizer=tiny_internalizer, doc_id="project")
    message = llm.invoke("What is the code name?")
    assert set(message.response_metadata) >= METADATA_KEYS
    assert message.response_metadata["doc_ids"] == ["project"]
    assert message.response_metadata["mode"] == "in_context"  # no checkpoint fits the tiny model
    assert message.response_metadata["model_name"] == tiny_internalizer.lm.name
    usage = message.usage_metadata
    assert usage is not None and usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert llm.invoke("When does the ferry leave?", doc_id="harbor").response_metadata["doc_ids"] == ["harbor"]
    both = llm.invoke("Anything?", doc_ids=["harbor", "bakery"]).response_metadata["doc_ids"]
    assert both == ["harbor", "bakery"]
    bound = llm.bind(doc_id="bakery").invoke("Who is the baker?")
    assert bound.response_metadata["doc_ids"] == ["bakery"]


def test_max_tokens_and_system_messages_apply_to_the_call_only(tiny_internalizer: DocumentInternalizer) -> None:
    llm = D2LChatModel(internalizer=tiny_internalizer, doc_id="project")
    short = llm.invoke("What is it?", max_tokens=2)
    assert short.usage_metadata is not None and short.usage_metadata["output_tokens"] <= 2
    assert (
        D2LChatModel(internalizer=tiny_internalizer, doc_id="project", max_tokens=3)
        .invoke("x")
        .usage_metadata["output_tokens"]
        <= 3
    )
    plain = llm.invoke([HumanMessage("What is it?")]).usage_metadata
    system = "Answer in one short sentence, please."
    with_system = llm.invoke([SystemMessage(system), HumanMessage("What is it?")]).usage_metadata
    assert plain is not None and with_system is not None
    assert with_system["input_tokens"] - plain["input_tokens"] >= len(system)  # one token per character
    assert tiny_internalizer.config.generation.max_new_tokens == 8  # the shared internalizer is untouched
    assert tiny_internalizer.config.generation.system_prompt is None


def test_unsupported_call_options_are_clear_errors(tiny_internalizer: DocumentInternalizer) -> None:
    llm = D2LChatModel(internalizer=tiny_internalizer, doc_id="project")
    with pytest.raises(InvalidInputError, match="does not accept"):
        llm.invoke("hi", tools=[])
    with pytest.raises(InvalidInputError, match="base model is fixed"):
        llm.invoke("hi", model="gpt-4o")
    assert llm.invoke("hi", model=tiny_internalizer.lm.name).response_metadata["doc_ids"] == ["project"]
    with pytest.raises(UnknownDocumentError, match="unknown document 'nope'"):
        llm.invoke("hi", doc_id="nope")


def test_answer_runnable_input_errors(tiny_internalizer: DocumentInternalizer) -> None:
    answer = D2LAnswerRunnable.from_internalizer(tiny_internalizer)
    with pytest.raises(InvalidInputError, match="'question' key"):
        answer.invoke({"doc_id": "project"})
    with pytest.raises(InvalidInputError, match="unknown keys"):
        answer.invoke({"question": "q", "context": "x"})
    with pytest.raises(InvalidInputError, match="question string or a mapping"):
        answer.invoke(42)  # type: ignore[arg-type]
    assert answer.invoke({"question": "q", "doc_ids": ("harbor",)}).response_metadata["doc_ids"] == ["harbor"]


def test_lazily_built_internalizer_reads_documents_from_the_cache(tiny_lm: FrozenLM, tmp_path: Path) -> None:
    """A chat model given only paths loads nothing until first used, then sees documents added by others."""
    model_dir = tmp_path / "tiny-model"
    tiny_lm.model.save_pretrained(model_dir)
    tiny_lm.tokenizer.save_pretrained(model_dir)
    writer = DocumentInternalizer(model=tiny_lm, cache_dir=tmp_path / "cache")
    writer.add("notes", "The meeting is on Friday.")
    llm = D2LChatModel(model_path=str(model_dir), cache_dir=str(tmp_path / "cache"), doc_id="notes", max_tokens=2)
    assert llm._built is None
    message = llm.invoke("When is the meeting?")
    assert llm._built is not None and llm._built is not writer
    assert message.response_metadata["doc_ids"] == ["notes"]
    assert message.response_metadata["model_name"] == "tiny-model"


# -- real SmolLM2-135M --------------------------------------------------------------------------------
@pytest.mark.real_model
def test_planted_fact_in_context_through_every_path(real_internalizer: DocumentInternalizer) -> None:
    llm = D2LChatModel(internalizer=real_internalizer, doc_id="project")
    question = "What is the code name of the project?"
    message = llm.invoke(question)
    assert "Bluefin" in message.content
    assert message.response_metadata["mode"] == "in_context"
    assert "internalize=False" in message.response_metadata["fallback_reason"]
    streamed = list(llm.stream(question))
    assert "".join(c.content for c in streamed) == message.content  # greedy: same text either way
    assert streamed[-1].chunk_position == "last" and streamed[-1].usage_metadata is not None
    assert asyncio.run(llm.ainvoke(question)).content == message.content

    async def astream_text() -> str:
        return "".join([c.content async for c in llm.astream(question)])

    assert asyncio.run(astream_text()) == message.content


@pytest.mark.real_model
def test_stop_cuts_invoke_and_stream_alike(real_internalizer: DocumentInternalizer) -> None:
    llm = D2LChatModel(internalizer=real_internalizer, doc_id="project")
    question = "What is the code name of the project?"
    full = llm.invoke(question).content
    assert "Bluefin" in full
    expected = full[: full.index("Bluefin")]
    assert llm.invoke(question, stop=["Bluefin"]).content == expected
    assert "".join(c.content for c in llm.stream(question, stop=["Bluefin"])) == expected
    assert D2LChatModel(internalizer=real_internalizer, doc_id="project", stop=["Bluefin"]).invoke(
        question
    ).content == (expected)


@pytest.mark.real_model
def test_router_picks_the_document_when_none_is_bound(real_internalizer: DocumentInternalizer) -> None:
    llm = D2LChatModel(internalizer=real_internalizer)
    message = llm.invoke("When does the ferry to Oakmere leave?")
    assert message.response_metadata["doc_ids"] == ["harbor"]
    assert message.response_metadata["routed"] is True
    assert "noon" in message.content


@pytest.mark.real_model
def test_adapter_and_fallback_modes(adapter_internalizer: DocumentInternalizer) -> None:
    """With a checkpoint, an internalized document answers from its adapter; one without answers in context."""
    llm = D2LChatModel(internalizer=adapter_internalizer)
    adapter = llm.invoke("What is the code name?", doc_id="project").response_metadata
    assert adapter["mode"] == "adapter" and adapter["adapter_rank"] > 0 and adapter["fallback_reason"] is None
    fallback = llm.invoke("Who is the baker?", doc_id="bakery").response_metadata
    assert fallback["mode"] == "in_context" and fallback["adapter_rank"] == 0
    assert fallback["fallback_reason"].startswith("bakery:")
    both = llm.invoke("Tell me.", doc_ids=["project", "bakery"]).response_metadata
    assert both["mode"] == "hybrid" and both["doc_ids"] == ["project", "bakery"]


@pytest.mark.real_model
def test_answer_runnable_replaces_retriever_prompt_llm(real_internalizer: DocumentInternalizer) -> None:
    chain = D2LAnswerRunnable.from_internalizer(real_internalizer) | StrOutputParser()
    answer = chain.invoke({"question": "What is the code name of the project?", "doc_id": "project"})
    assert isinstance(answer, str) and "Bluefin" in answer
    batch = chain.batch(
        [
            {"question": "What is the code name of the project?", "doc_id": "project"},
            {"question": "When does the ferry to Oakmere leave?", "doc_id": "harbor"},
        ]
    )
    assert "Bluefin" in batch[0] and "noon" in batch[1]
