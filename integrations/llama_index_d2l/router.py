"""`build_router_query_engine`: a LlamaIndex `RouterQueryEngine` with one `D2LQueryEngine` tool per document."""

from __future__ import annotations

import re
from collections.abc import Sequence

from llama_index.core.base.base_selector import BaseSelector
from llama_index.core.llms import LLM
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.tools import QueryEngineTool

from d2l_rag.errors import InvalidInputError
from d2l_rag.internalizer import DocumentInternalizer
from llama_index_d2l.llms import D2LLLM
from llama_index_d2l.query_engine import D2LQueryEngine
from llama_index_d2l.selectors import BM25Selector

__all__ = ["build_router_query_engine", "document_tools"]


def _tool_name(doc_id: str, taken: set[str]) -> str:
    """A function-call-safe tool name (letters, digits, underscores, <= 64 chars), unique among `taken`."""
    base = re.sub(r"\W+", "_", doc_id).strip("_")[:56] or "document"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def document_tools(
    internalizer: DocumentInternalizer, doc_ids: Sequence[str] | None = None, description_chars: int = 300
) -> list[QueryEngineTool]:
    """One `QueryEngineTool` per document, described by its title and the start of its text."""
    if description_chars < 1:
        raise InvalidInputError(f"description_chars must be >= 1, got {description_chars}")
    infos = {info.doc_id: info for info in internalizer.documents()}
    ids = list(doc_ids) if doc_ids is not None else sorted(infos)
    if not ids:
        raise InvalidInputError(f"no documents in collection {internalizer.collection_name!r} to route between")
    taken: set[str] = set()
    tools = []
    for doc_id in ids:
        title = infos[doc_id].title if doc_id in infos else doc_id
        start = " ".join(internalizer.text(doc_id)[: description_chars * 2].split())[:description_chars]
        tools.append(
            QueryEngineTool.from_defaults(
                query_engine=D2LQueryEngine(internalizer=internalizer, doc_id=doc_id),
                name=_tool_name(doc_id, taken),
                description=f"Answers questions about '{title}'. It begins: {start}",
            )
        )
    return tools


def build_router_query_engine(
    internalizer: DocumentInternalizer,
    doc_ids: Sequence[str] | None = None,
    selector: BaseSelector | None = None,
    llm: LLM | None = None,
    description_chars: int = 300,
) -> RouterQueryEngine:
    """A `RouterQueryEngine` over `doc_ids` (default: every document of the internalizer's collection).

    The selector defaults to `BM25Selector` (offline, works with the 135M default model); the LLM, used only to
    summarize a multi-selection, defaults to a routed `D2LLLM`, so no OpenAI default is ever looked up.
    The selected engine's `response.metadata` keeps `doc_ids` and `mode`, plus the router's `selector_result`.
    """
    return RouterQueryEngine(
        selector=selector or BM25Selector(),
        query_engine_tools=document_tools(internalizer, doc_ids, description_chars),
        llm=llm or D2LLLM(internalizer=internalizer),
    )
