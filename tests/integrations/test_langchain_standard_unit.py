"""LangChain's standard `ChatModelUnitTests` for `D2LChatModel` (tiny random Llama: no generation happens here)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_d2l import D2LChatModel
from langchain_tests.unit_tests import ChatModelUnitTests

from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.testing import D2LChatModelCapabilities


class TestD2LChatModelUnit(D2LChatModelCapabilities, ChatModelUnitTests):
    @pytest.fixture(autouse=True)
    def _bind_internalizer(self, tiny_internalizer: DocumentInternalizer) -> None:
        self._internalizer = tiny_internalizer  # the suite builds models from chat_model_params, per test

    @property
    def chat_model_class(self) -> type[D2LChatModel]:
        return D2LChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"internalizer": self._internalizer, "doc_id": "project"}
