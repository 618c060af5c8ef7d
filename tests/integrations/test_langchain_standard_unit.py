"""LangChain's standard `ChatModelUnitTests` for `D2LChatModel` (tiny random Llama: no generation happens here)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_d2l import D2LChatModel
from langchain_tests.unit_tests import ChatModelUnitTests

from d2l_rag.internalizer import DocumentInternalizer


class TestD2LChatModelUnit(ChatModelUnitTests):
    @pytest.fixture(autouse=True)
    def _bind_internalizer(self, tiny_internalizer: DocumentInternalizer) -> None:
        self._internalizer = tiny_internalizer  # the suite builds models from chat_model_params, per test

    @property
    def chat_model_class(self) -> type[D2LChatModel]:
        return D2LChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"internalizer": self._internalizer, "doc_id": "project"}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False  # one base model per internalizer; a different `model=` is a clear error
