"""LangChain's standard `ChatModelIntegrationTests` for `D2LChatModel` on the real SmolLM2-135M-Instruct."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_d2l import D2LChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.testing import D2LChatModelCapabilities

pytestmark = [pytest.mark.real_model, pytest.mark.slow]


class TestD2LChatModelIntegration(D2LChatModelCapabilities, ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _bind_internalizer(self, real_internalizer: DocumentInternalizer) -> None:
        self._internalizer = real_internalizer  # loaded once per session, shared by every model the suite builds

    @property
    def chat_model_class(self) -> type[D2LChatModel]:
        return D2LChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # max_new_tokens comes from the internalizer's config (16): the suite's prompts only need a non-empty answer
        return {"internalizer": self._internalizer, "doc_id": "handbook"}
