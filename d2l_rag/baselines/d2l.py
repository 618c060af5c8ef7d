"""D2L behind the baseline interface: one hypernetwork pass turns the document into an adapter, no text in the prompt.

Built on `AdapterBuilder` + `Generator` directly (not `DocumentInternalizer`), so it needs neither the disk cache
nor a chat-store: the benchmark runs it on GPU hosts that have only torch, transformers and safetensors. Its answers
are grounded in the document's spelling as `DocumentInternalizer.ask` grounds them by default, so the benchmark
measures what users get (`ground_spelling=False` measures the raw adapter).
"""

from __future__ import annotations

import time
from pathlib import Path

from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.baselines.base import BaselineAnswer, DocumentCache, check_document
from d2l_rag.config import GenerationConfig
from d2l_rag.generation import Generator
from d2l_rag.grounding import MIN_SIMILARITY, DocumentLexicon, tokenizer_rarity
from d2l_rag.model.base import FrozenLM
from d2l_rag.model.checkpoint import LoadedHypernetwork, load_checkpoint

__all__ = ["D2LBaseline"]


class D2LBaseline:
    """Answer with the document's generated adapter and only the question in the prompt.

    Example:
        >>> d2l = D2LBaseline.from_checkpoint(lm, "d2l_rag/checkpoints/smollm2-135m-instruct")
        >>> d2l.answer("What is the code name?", text).notes   # ('adapter rank 8 from 1 chunk(s)',)
    """

    name = "d2l"

    def __init__(
        self,
        lm: FrozenLM,
        hypernet: LoadedHypernetwork,
        generation: GenerationConfig | None = None,
        chunk_tokens: int | None = None,
        batch_chunks: int = 8,
        ground_spelling: bool = True,
        grounding_min_similarity: float = MIN_SIMILARITY,
    ) -> None:
        self.builder = AdapterBuilder(lm, hypernet, chunk_tokens=chunk_tokens, batch_chunks=batch_chunks)
        self.generator = Generator(lm, generation)
        self.ground_spelling = ground_spelling
        self.grounding_min_similarity = grounding_min_similarity
        self._is_rare = tokenizer_rarity(lm.tokenizer)
        self._adapters: DocumentCache[DocumentAdapter] = DocumentCache(max_documents=64)
        self._lexicons: DocumentCache[DocumentLexicon] = DocumentCache(max_documents=64)

    @classmethod
    def from_checkpoint(cls, lm: FrozenLM, checkpoint: str | Path, **kwargs) -> D2LBaseline:
        return cls(lm, load_checkpoint(checkpoint, lm), **kwargs)

    def internalize(self, document: str) -> tuple[DocumentAdapter, float]:
        """(the document's adapter, seconds spent building it now; 0.0 when it was cached)."""
        check_document(document)
        start = time.perf_counter()
        adapter, built = self._adapters.get_or_build(document, lambda: self.builder.build(document))
        return adapter, (time.perf_counter() - start) if built else 0.0

    def answer(self, question: str, document: str) -> BaselineAnswer:
        adapter, prepare_s = self.internalize(document)
        out = self.generator.answer(question, adapter=adapter)
        notes = [f"adapter rank {adapter.rank} from {adapter.chunk_count} chunk(s), {adapter.nbytes} bytes"]
        text = out.text
        if self.ground_spelling:
            lexicon, _ = self._lexicons.get_or_build(
                document, lambda: DocumentLexicon.from_texts([document], self._is_rare)
            )
            grounded = lexicon.ground(text, self.grounding_min_similarity)
            text = grounded.text
            notes += [f"spelling grounded: {c.original} -> {c.grounded}" for c in grounded.corrections]
        return BaselineAnswer(
            text, "d2l", out.prompt_tokens, out.seconds, out.completion_tokens, prepare_s, tuple(notes)
        )
