"""Text -> `DocumentAdapter`: tokenize, chunk, encode, run the hypernetwork, concatenate chunk LoRAs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

import torch

from d2l_rag.adapters.compose import compose, split_chunk_loras
from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.adapters.salience import keep_salient_chunks
from d2l_rag.config import HypernetPrecision
from d2l_rag.model.base import FrozenLM
from d2l_rag.model.checkpoint import LoadedHypernetwork
from d2l_rag.model.chunking import chunk_ids, tokenize_document
from d2l_rag.model.encoder import encode_chunks, pad_chunks
from d2l_rag.model.precision import effective_precision, hypernet_autocast

__all__ = ["AdapterBuilder", "composition_limit"]

ProgressCallback = Callable[[int, int], None]  # (chunks done, chunks total)


def composition_limit(hypernet: LoadedHypernetwork, max_chunks: int | None) -> int | None:
    """The chunks a document's adapter keeps at most (None = all): `max_chunks`, or the checkpoint's measured
    limit when it is None; 0 means every chunk."""
    if max_chunks is not None and max_chunks < 0:
        raise ValueError(f"max_chunks must be >= 0 or None, got {max_chunks}")
    return hypernet.config.max_composed_chunks if max_chunks is None else max_chunks or None


class AdapterBuilder:
    """Builds adapters for one base model and one hypernetwork; holds no per-document state."""

    def __init__(
        self,
        lm: FrozenLM,
        hypernet: LoadedHypernetwork,
        chunk_tokens: int | None = None,
        batch_chunks: int = 4,
        max_chunks: int | None = None,
        precision: HypernetPrecision = "auto",
    ) -> None:
        """`max_chunks`: chunks a document's adapter composes at most, keeping the most salient ones
        (`d2l_rag.adapters.salience`); None = the checkpoint's measured limit, 0 = every chunk. `precision`: the
        hypernetwork's (`d2l_rag.model.precision`); "auto" = bf16 autocast where the device is fast at it."""
        self.lm = lm
        self.hypernet = hypernet
        self.chunk_tokens = chunk_tokens or hypernet.config.hypernet.chunk_tokens
        self.batch_chunks = batch_chunks
        self.max_chunks = composition_limit(hypernet, max_chunks)
        self.precision = effective_precision(lm.device, precision)  # once: a bad value fails here, not at a document

    def chunks(self, text: str) -> list[list[int]]:
        return chunk_ids(tokenize_document(self.lm.tokenizer, text), self.chunk_tokens)

    @torch.no_grad()
    def encode_chunks(self, chunks: list[list[int]], progress: ProgressCallback | None = None) -> DocumentAdapter:
        """One adapter holding the LoRAs of `chunks`, in order (rank = len(chunks) * r)."""
        net = self.hypernet.network
        pieces, done = [], 0
        for batch in self._batches(chunks):
            ids, mask = pad_chunks(batch, self.lm.tokenizer.pad_token_id, self.lm.device)
            activations = encode_chunks(self.lm.model, ids, mask)
            with hypernet_autocast(self.lm.device, self.precision):
                loras = net(activations, mask)  # {target: (n, L, r, ...)}
            loras = {name: (a.float(), b.float()) for name, (a, b) in loras.items()}
            pieces.append(split_chunk_loras(loras, [len(batch)])[0])
            done += len(batch)
            if progress:
                progress(done, len(chunks))
        adapters = [self._wrap(w, chunk_count=0) for w in pieces]
        return compose(adapters, doc_ids=()) if len(adapters) > 1 else adapters[0]

    def _batches(self, chunks: list[list[int]]) -> list[list[list[int]]]:
        """Consecutive chunks, `batch_chunks` at most a batch. On CPU a batch also holds chunks of one length only:
        compute there grows with the padded tokens (a 17-token tail padded to 1024 would double a 1041-token
        document's cost), while an accelerator pays per call and pads for free."""
        split_lengths = self.lm.device.type == "cpu"
        batches: list[list[list[int]]] = []
        for chunk in chunks:
            last = batches[-1] if batches else None
            if last is None or len(last) == self.batch_chunks or (split_lengths and len(chunk) != len(last[0])):
                batches.append([chunk])
            else:
                last.append(chunk)
        return batches

    def encode_text(self, text: str, progress: ProgressCallback | None = None) -> DocumentAdapter:
        """The chunk LoRAs of `text` alone (no static bias): the cacheable unit, one per text part."""
        chunks = self.chunks(text)
        body = self.encode_chunks(chunks, progress)
        return self._finish(body, text, "", len(chunks), sum(len(c) for c in chunks))

    def document(self, parts: list[DocumentAdapter], doc_id: str = "") -> DocumentAdapter:
        """A document's adapter from its parts (its most salient `max_chunks` chunks when it has more), plus
        the static bias LoRA once (if the hypernetwork has one)."""
        doc_ids = (doc_id,) if doc_id else ()
        body = compose(parts, doc_ids=doc_ids)
        if len(parts) == 1:
            body = replace(body, source_sha256=parts[0].source_sha256)
        if self.max_chunks is not None:
            body = keep_salient_chunks(body, self.max_chunks, self.hypernet.config.hypernet.rank)
        bias = self.hypernet.network.bias_lora()
        if bias is None:
            return body
        with_bias = compose([body, self._wrap(split_chunk_loras(bias, [1])[0], chunk_count=0)], doc_ids=doc_ids)
        return replace(with_bias, source_sha256=body.source_sha256, metadata=body.metadata)

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
