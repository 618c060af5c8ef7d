"""llama_index_d2l: `D2LLLM`, `D2LQueryEngine`, `BM25Selector` and the router query engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms import LLM
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.tools.types import ToolMetadata
from llama_index_d2l import D2LLLM, BM25Selector, D2LQueryEngine, build_router_query_engine, document_tools
from pydantic import ValidationError

from d2l_rag.errors import InvalidInputError
from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.model import FrozenLM

QUESTIONS = {
    "project": ("What is the code name of the project?", "Bluefin"),
    "harbor": ("When does the ferry to Oakmere leave?", "noon"),
    "bakery": ("What bread does the bakery on Mill Street sell?", "rye"),
}


# -- tiny random Llama: plumbing ----------------------------------------------------------------------
def test_llm_metadata_is_the_real_window_and_answer_length(tiny_internalizer: DocumentInternalizer) -> None:
    llm = D2LLLM(internalizer=tiny_internalizer, doc_id="project")
    assert isinstance(llm, LLM)
    assert llm.metadata.context_window == tiny_internalizer.lm.context_window == 4096
    assert llm.metadata.num_output == tiny_internalizer.config.generation.max_new_tokens == 8
    assert llm.metadata.model_name == tiny_internalizer.lm.name
    with pytest.raises(ValidationError, match="not both"):
        D2LLLM(internalizer=tiny_internalizer, doc_id="project", doc_ids=["harbor"])


def test_llm_per_call_target_and_errors(tiny_internalizer: DocumentInternalizer) -> None:
    llm = D2LLLM(internalizer=tiny_internalizer, doc_id="project")
    assert llm.complete("x", doc_id="harbor").additional_kwargs["doc_ids"] == ["harbor"]
    with pytest.raises(InvalidInputError, match="does not accept"):
        llm.complete("x", temperature=0.3)
    with pytest.raises(InvalidInputError, match="ends with a 'assistant' message"):
        llm.chat(
            [ChatMessage(role=MessageRole.USER, content="q"), ChatMessage(role=MessageRole.ASSISTANT, content="a")]
        )
    with pytest.raises(InvalidInputError, match="at least one message"):
        llm.chat([])


def test_chat_system_message_reaches_the_prompt(tiny_internalizer: DocumentInternalizer) -> None:
    llm = D2LLLM(internalizer=tiny_internalizer, doc_id="project")
    question = ChatMessage(role=MessageRole.USER, content="What is it?")
    system = "Answer in one short sentence, please."
    plain = llm.chat([question]).additional_kwargs["prompt_tokens"]
    with_system = llm.chat([ChatMessage(role=MessageRole.SYSTEM, content=system), question])
    assert with_system.additional_kwargs["prompt_tokens"] - plain >= len(system)  # one token per character
    assert tiny_internalizer.config.generation.system_prompt is None


def test_query_engine_needs_exactly_one_target(tiny_internalizer: DocumentInternalizer) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        D2LQueryEngine(internalizer=tiny_internalizer)
    with pytest.raises(ValidationError, match="exactly one"):
        D2LQueryEngine(internalizer=tiny_internalizer, doc_id="project", doc_ids=["harbor"])
    response = D2LQueryEngine(internalizer=tiny_internalizer, doc_ids=["project", "harbor"]).query("x")
    assert response.metadata["doc_ids"] == ["project", "harbor"] and response.source_nodes == []


def test_bm25_selector_picks_by_description() -> None:
    choices = [
        ToolMetadata(name="project", description="The code name of the project is Bluefin."),
        ToolMetadata(name="harbor", description="Oakmere is a harbor town with a ferry."),
        ToolMetadata(name="bakery", description="The bakery on Mill Street sells rye bread."),
    ]
    selector = BM25Selector()
    assert selector.select(choices, "When does the ferry leave?").ind == 1
    assert selector.select(choices, "Which bread is sold on Mill Street?").ind == 2
    assert asyncio.run(selector.aselect(choices, "What is the code name?")).ind == 0
    assert BM25Selector(top_k=2).select(choices, "Which bread is sold at the harbor?").inds[:1] in ([1], [2])
    assert len(BM25Selector(top_k=5).select(choices, "ferry").inds) == 3
    assert selector.get_prompts() == {}
    with pytest.raises(InvalidInputError, match="top_k"):
        BM25Selector(top_k=0)
    with pytest.raises(InvalidInputError, match="no choices"):
        selector.select([], "q")


def test_document_tools_have_safe_unique_names_and_descriptions(tiny_lm: FrozenLM, tmp_path: Path) -> None:
    internalizer = DocumentInternalizer(model=tiny_lm, cache_dir=tmp_path)
    internalizer.add("notes/a b.md", "Alpha notes about the launch.", title="Launch notes")
    internalizer.add("notes/a-b.md", "Beta notes about the budget.")
    tools = document_tools(internalizer, description_chars=12)
    names = [t.metadata.name for t in tools]
    assert names == ["notes_a_b_md", "notes_a_b_md_2"]
    assert "Launch notes" in tools[0].metadata.description
    assert tools[0].metadata.description.endswith("Alpha notes ")
    with pytest.raises(InvalidInputError, match="no documents"):
        document_tools(internalizer.collection("empty"))
    engine = build_router_query_engine(internalizer)
    assert isinstance(engine, RouterQueryEngine)


# -- real SmolLM2-135M --------------------------------------------------------------------------------
@pytest.mark.real_model
def test_complete_stream_complete_and_chat_answer_a_planted_fact(real_internalizer: DocumentInternalizer) -> None:
    llm = D2LLLM(internalizer=real_internalizer, doc_id="project")
    question = QUESTIONS["project"][0]
    completion = llm.complete(question)
    assert "Bluefin" in completion.text
    assert completion.additional_kwargs["mode"] == "in_context"
    assert completion.additional_kwargs["doc_ids"] == ["project"]
    pieces = list(llm.stream_complete(question))
    assert "".join(p.delta for p in pieces) == pieces[-1].text == completion.text
    assert pieces[-1].additional_kwargs["mode"] == "in_context"
    assert all(not p.additional_kwargs for p in pieces[:-1])
    reply = llm.chat([ChatMessage(role=MessageRole.USER, content=question)])
    assert reply.message.role == MessageRole.ASSISTANT and reply.message.content == completion.text
    streamed = list(llm.stream_chat([ChatMessage(role=MessageRole.USER, content=question)]))
    assert streamed[-1].message.content == completion.text
    assert asyncio.run(llm.acomplete(question)).text == completion.text


@pytest.mark.real_model
def test_query_engine_answers_a_planted_fact(real_internalizer: DocumentInternalizer) -> None:
    engine = D2LQueryEngine(internalizer=real_internalizer, doc_id="harbor")
    response = engine.query(QUESTIONS["harbor"][0])
    assert "noon" in str(response)
    assert response.metadata["doc_ids"] == ["harbor"]
    assert response.metadata["mode"] == "in_context"
    assert asyncio.run(engine.aquery(QUESTIONS["harbor"][0])).response == response.response


@pytest.mark.real_model
def test_router_sends_each_question_to_its_document(real_internalizer: DocumentInternalizer) -> None:
    router = build_router_query_engine(real_internalizer, doc_ids=list(QUESTIONS))
    for doc_id, (question, fact) in QUESTIONS.items():
        response = router.query(question)
        assert response.metadata["doc_ids"] == [doc_id], question
        assert response.metadata["selector_result"].ind == list(QUESTIONS).index(doc_id)
        assert fact.lower() in str(response).lower(), (question, str(response))


@pytest.mark.real_model
def test_document_without_adapter_answers_through_fallback(adapter_internalizer: DocumentInternalizer) -> None:
    fallback = D2LQueryEngine(internalizer=adapter_internalizer, doc_id="bakery").query("Who is the baker?")
    assert fallback.metadata["mode"] == "in_context"
    assert fallback.metadata["fallback_reason"].startswith("bakery:")
    adapter = D2LLLM(internalizer=adapter_internalizer, doc_id="project").complete("What is the code name?")
    assert adapter.additional_kwargs["mode"] == "adapter" and adapter.additional_kwargs["adapter_rank"] > 0
    fallback_llm = D2LLLM(internalizer=adapter_internalizer, doc_id="bakery").complete("Who is the baker?")
    assert fallback_llm.additional_kwargs["mode"] == "in_context"
