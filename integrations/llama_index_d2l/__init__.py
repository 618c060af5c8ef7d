"""LlamaIndex integration of d2l-rag: an LLM, a retriever-free query engine and a router over documents."""

from llama_index_d2l.llms import D2LLLM
from llama_index_d2l.query_engine import D2LQueryEngine
from llama_index_d2l.router import build_router_query_engine, document_tools
from llama_index_d2l.selectors import BM25Selector

__all__ = ["D2LLLM", "BM25Selector", "D2LQueryEngine", "build_router_query_engine", "document_tools"]
