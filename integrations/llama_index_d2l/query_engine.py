"""`D2LQueryEngine`: a retriever-free query engine over one document (or a fixed set of documents)."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.response.schema import Response
from llama_index.core.bridge.pydantic import Field, model_validator
from llama_index.core.query_engine import CustomQueryEngine

from d2l_rag.answer import InternalizedAnswer
from d2l_rag.internalizer import DocumentInternalizer

__all__ = ["D2LQueryEngine"]


class D2LQueryEngine(CustomQueryEngine):
    """Answer queries about a document from its adapter: no retriever, no nodes, no document text in the prompt.

    Where a RAG query engine retrieves nodes and synthesizes from them, this one asks the internalizer directly.
    `response.metadata` carries `doc_ids`, `mode` ("adapter", or "in_context" for a document without an adapter),
    `fallback_reason`, token counts and timings. `source_nodes` is empty: nothing was retrieved.

    Instantiate:
        engine = D2LQueryEngine(internalizer=internalizer, doc_id="handbook")

    Query:
        response = engine.query("Who approves travel?")
        str(response), response.metadata["mode"]
    """

    internalizer: DocumentInternalizer = Field(exclude=True, description="The documents and the model.")
    doc_id: str | None = Field(default=None, description="The document to answer from.")
    doc_ids: list[str] | None = Field(default=None, description="Several documents, their adapters composed.")

    @model_validator(mode="after")
    def _check_target(self) -> D2LQueryEngine:
        if (self.doc_id is None) == (self.doc_ids is None):
            raise ValueError("D2LQueryEngine answers a chosen document: pass exactly one of doc_id or doc_ids")
        if self.doc_ids is not None and not self.doc_ids:
            raise ValueError("doc_ids is empty")
        return self

    def _response(self, answer: InternalizedAnswer) -> Response:
        metadata: dict[str, Any] = {**answer.metadata(), "model_name": self.internalizer.lm.name}
        return Response(response=answer.text, source_nodes=[], metadata=metadata)

    def custom_query(self, query_str: str) -> Response:
        return self._response(self.internalizer.ask(query_str, doc_id=self.doc_id, doc_ids=self.doc_ids))

    async def acustom_query(self, query_str: str) -> Response:
        return self._response(await self.internalizer.aask(query_str, doc_id=self.doc_id, doc_ids=self.doc_ids))
