"""Text -> `DocumentAdapter`: tokenize, chunk, encode, run the hypernetwork, concatenate chunk LoRAs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

import torch

from d2l_rag.adapters.compose import compose, split_chunk_loras
from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.model.base import FrozenLM
from d2l_rag.model.checkpoint import LoadedHypernetwork
from d2l_rag.model.chunking import chunk_ids, tokenize_document
from d2l_rag.model.encoder import encode_chunks, pad_chunks

__all__ = ["AdapterBuilder"]

ProgressCallback = Callable[[int, int], None]  # (chunks done, chunks total)


class AdapterBuilder:
    """Builds adapters for one base model and one hypernetwork; holds no per-document state."""

    def __init__(
        self, lm: FrozenLM, hypernet: LoadedHypernetwork, chunk_tokens: int | None = None, batch_chunks: int = 4
    ) -> None:
        self.lm = lm
        self.hypernet = hypernet
        self.chunk_tokens = chunk_tokens or hypernet.config.hypernet.chunk_tokens
        self.batch_chunks = batch_chunks

    def chunks(self, text: str) -> list[list[int]]:
        return chunk_ids(tokenize_document(self.lm.tokenizer, text), self.chunk_tokens)

    @torch.no_grad()
    def encode_chunks(self, chunks: list[list[int]], progress: ProgressCallback | None = None) -> DocumentAdapter:
        """One adapter holding the LoRAs of `chunks`, in order (rank = len(chunks) * r)."""
        net = self.hypernet.network
        pieces = []
        for start in range(0, len(chunks), self.batch_chunks):
            batch = chunks[start : start + self.batch_chunks]
            ids, mask = pad_chunks(batch, self.lm.tokenizer.pad_token_id, self.lm.device)
            loras = net(encode_chunks(self.lm.model, ids, mask), mask)  # {target: (n, L, r, ...)}
            pieces.append(split_chunk_loras(loras, [len(batch)])[0])
            if progress:
                progress(min(start + len(batch), len(chunks)), len(chunks))
        adapters = [self._wrap(w, chunk_count=0) for w in pieces]
        return compose(adapters, doc_ids=()) if len(adapters) > 1 else adapters[0]

    def encode_text(self, text: str, progress: ProgressCallback | None = None) -> DocumentAdapter:
        """The chunk LoRAs of `text` alone (no static bias): the cacheable unit, one per text part."""
        chunks = self.chunks(text)
        body = self.encode_chunks(chunks, progress)
        return self._finish(body, text, "", len(chunks), sum(len(c) for c in chunks))

    def document(self, parts: list[DocumentAdapter], doc_id: str = "") -> DocumentAdapter:
        """A document's adapter from its parts, plus the static bias LoRA once (if the hypernetwork has one)."""
        pieces = list(parts)
        bias = self.hypernet.network.bias_lora()
        if bias is not None:
            pieces.append(self._wrap(split_chunk_loras(bias, [1])[0], chunk_count=0))
        adapter = compose(pieces, doc_ids=(doc_id,) if doc_id else ())
        if len(parts) == 1:
            return replace(adapter, source_sha256=parts[0].source_sha256)
        return adapter

    def build(self, text: str, doc_id: str = "", progress: ProgressCallback | None = None) -> DocumentAdapter:
        """The adapter of a whole document."""
        return self.document([self.encode_text(text, progress)], doc_id)

    def extend(
        self, adapter: DocumentAdapter, more_text: str, progress: ProgressCallback | None = None
    ) -> DocumentAdapter:
        """Append the chunks of `more_text` to `adapter` without re-encoding what it already holds."""
        chunks = self.chunks(more_text)
        extra = self.encode_chunks(chunks, progress)
        merged = compose([adapter, extra], doc_ids=adapter.doc_ids)
        sha = hashlib.sha256((adapter.source_sha256 + hashlib.sha256(more_text.encode()).hexdigest()).encode())
        return DocumentAdapter(
            weights=merged.weights,
            base_fingerprint=merged.base_fingerprint,
            hypernet_id=merged.hypernet_id,
            scale=merged.scale,
            doc_ids=adapter.doc_ids,
            chunk_count=adapter.chunk_count + len(chunks),
            token_count=adapter.token_count + sum(len(c) for c in chunks),
            source_sha256=sha.hexdigest(),
            metadata=adapter.metadata,
        )

    def _wrap(self, weights: dict[str, tuple[torch.Tensor, torch.Tensor]], chunk_count: int) -> DocumentAdapter:
        return DocumentAdapter(
            weights=weights,
            base_fingerprint=self.lm.fingerprint.id,
            hypernet_id=self.hypernet.id,
            scale=self.hypernet.config.hypernet.lora_scale,
            chunk_count=chunk_count,
        )

    def _finish(self, adapter: DocumentAdapter, text: str, doc_id: str, chunks: int, tokens: int) -> DocumentAdapter:
        return DocumentAdapter(
            weights=adapter.weights,
            base_fingerprint=adapter.base_fingerprint,
            hypernet_id=adapter.hypernet_id,
            scale=adapter.scale,
            doc_ids=(doc_id,) if doc_id else (),
            chunk_count=chunks,
            token_count=tokens,
            source_sha256=hashlib.sha256(text.encode()).hexdigest(),
        )
