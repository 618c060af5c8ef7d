"""`BM25Selector`: an offline LlamaIndex selector over tool descriptions, backed by d2l-rag's `BM25Router`.

LLM selectors ask the model to pick a tool by number; SmolLM2-135M cannot do that reliably, and the default
router of `DocumentInternalizer` is BM25 anyway, so `RouterQueryEngine` routes the same way the core does.
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.base_selector import BaseSelector, SelectorResult, SingleSelection
from llama_index.core.prompts.mixin import PromptDictType
from llama_index.core.schema import QueryBundle
from llama_index.core.tools.types import ToolMetadata

from d2l_rag.errors import InvalidInputError
from d2l_rag.routing import BM25Router

__all__ = ["BM25Selector"]


class BM25Selector(BaseSelector):
    """Pick the `top_k` choices whose descriptions (name + description) share the most BM25 weight with the query.

    Deterministic and model-free; ties keep the order of the choices. `top_k > 1` gives a multi-selection, which
    `RouterQueryEngine` answers with each selected engine and then summarizes.
    """

    def __init__(self, top_k: int = 1, router: BM25Router | None = None) -> None:
        if top_k < 1:
            raise InvalidInputError(f"top_k must be >= 1, got {top_k}")
        self.top_k = top_k
        self.router = router or BM25Router()

    def _get_prompts(self) -> PromptDictType:
        return {}

    def _update_prompts(self, prompts_dict: PromptDictType) -> None:
        del prompts_dict  # no prompts: nothing to update

    def _select(self, choices: Sequence[ToolMetadata], query: QueryBundle) -> SelectorResult:
        if not choices:
            raise InvalidInputError("BM25Selector got no choices to select from")
        texts = {str(i): f"{c.name or ''}\n{c.description}" for i, c in enumerate(choices)}
        picked = self.router.route(query.query_str, texts, min(self.top_k, len(choices)))
        return SelectorResult(
            selections=[
                SingleSelection(index=int(i), reason=f"best BM25 match ({rank + 1} of {len(choices)} choices)")
                for rank, i in enumerate(picked)
            ]
        )

    async def _aselect(self, choices: Sequence[ToolMetadata], query: QueryBundle) -> SelectorResult:
        return self._select(choices, query)
