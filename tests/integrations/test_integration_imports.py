"""The public surface of both integration packages changes only on purpose."""

from __future__ import annotations

import langchain_d2l
import llama_index_d2l


def test_langchain_d2l_all() -> None:
    assert langchain_d2l.__all__ == ["D2LAnswerRunnable", "D2LChatModel"]
    for name in langchain_d2l.__all__:
        assert getattr(langchain_d2l, name).__module__.startswith("langchain_d2l.")


def test_llama_index_d2l_all() -> None:
    assert llama_index_d2l.__all__ == [
        "D2LLLM",
        "BM25Selector",
        "D2LQueryEngine",
        "build_router_query_engine",
        "document_tools",
    ]
    for name in llama_index_d2l.__all__:
        assert getattr(llama_index_d2l, name).__module__.startswith("llama_index_d2l.")
