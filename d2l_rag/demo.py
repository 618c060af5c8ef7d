"""The README demo: internalize the bundled sample documents, then answer questions with the adapter and in context.

Samples ship inside the package (`d2l_rag/samples/`): real texts (the Gettysburg Address, an excerpt of Python's
own reference manual), a fictional staff handbook whose facts no model can know, and a 3,800-token haystack
with one magic number (what the shipped checkpoint internalizes best). Each question is answered
twice, side by side: with the document's adapter only (no text in the prompt) and with the document in the prompt.
Without a checkpoint for the base model there are no adapters; the demo says so and shows the in-context answers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources

from d2l_rag.answer import InternalizedAnswer
from d2l_rag.errors import InvalidInputError
from d2l_rag.internalizer import DocumentInfo, DocumentInternalizer

__all__ = ["DemoResult", "Sample", "load_samples", "run_demo"]


@dataclass(frozen=True)
class Sample:
    """A bundled document and the questions the demo asks about it."""

    doc_id: str
    title: str
    kind: str  # "real", "fictional" or "needle"
    source: str
    text: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class DemoResult:
    """What the demo did: per document how it was internalized, per question both answers."""

    documents: list[tuple[Sample, DocumentInfo, float, int]]  # sample, info, internalize seconds, chunks encoded
    answers: list[tuple[str, str, InternalizedAnswer, InternalizedAnswer | None]]  # doc id, question, adapter, in ctx
    no_adapter_reason: str | None


def load_samples() -> list[Sample]:
    """The samples listed in `d2l_rag/samples/samples.json`, read through importlib.resources (works from a wheel)."""
    folder = resources.files("d2l_rag") / "samples"
    entries = json.loads((folder / "samples.json").read_text(encoding="utf-8"))
    return [
        Sample(
            doc_id=e["doc_id"],
            title=e["title"],
            kind=e["kind"],
            source=e["source"],
            text=(folder / e["file"]).read_text(encoding="utf-8"),
            questions=tuple(e["questions"]),
        )
        for e in entries
    ]


def run_demo(
    internalizer: DocumentInternalizer,
    console=None,
    questions_per_document: int = 3,
    samples: list[Sample] | None = None,
) -> DemoResult:
    """Internalize the samples into `internalizer`'s current collection, ask, and print rich tables."""
    from rich.console import Console

    if questions_per_document < 1:
        raise InvalidInputError(f"questions_per_document must be >= 1, got {questions_per_document}")
    console = console or Console()
    samples = samples if samples is not None else load_samples()
    reason = internalizer.no_adapter_reason
    info = internalizer.info()
    console.print(f"[bold]model[/bold] {info['model']}  [bold]hypernetwork[/bold] {info['hypernetwork'] or 'none'}")
    if reason is not None:
        console.print(f"[yellow]No adapters: {reason}.[/yellow] Every answer below is the in-context fallback.")

    documents = []
    for sample in samples:
        encoded_before = internalizer.chunks_encoded
        start = time.perf_counter()
        doc = internalizer.add(
            sample.doc_id, sample.text, {"source": sample.source}, title=sample.title, overwrite=True
        )
        documents.append((sample, doc, time.perf_counter() - start, internalizer.chunks_encoded - encoded_before))
    console.print(_documents_table(documents))

    answers = []
    for sample in samples:
        for question in sample.questions[:questions_per_document]:
            asked = internalizer.ask(question, doc_id=sample.doc_id)
            in_context = internalizer.ask_in_context(question, sample.doc_id) if asked.mode != "in_context" else None
            answers.append((sample.doc_id, question, asked, in_context))
    console.print(_answers_table(answers, with_adapters=reason is None))
    return DemoResult(documents, answers, reason)


def _documents_table(documents: list[tuple[Sample, DocumentInfo, float, int]]):
    from rich.table import Table

    table = Table(title="Internalized documents", show_lines=False)
    for column in ("document", "kind", "tokens", "chunks", "answered with", "internalize s", "encoded"):
        table.add_column(column, justify="right" if column in ("tokens", "chunks", "internalize s") else "left")
    for sample, doc, seconds, encoded in documents:
        table.add_row(
            sample.doc_id,
            sample.kind,
            str(doc.tokens),
            str(doc.chunks),
            "adapter" if doc.internalized else "in context",
            f"{seconds:.2f}",
            f"{encoded} chunks" if encoded else ("cached" if doc.internalized else "-"),
        )
    return table


def _answers_table(answers: list[tuple[str, str, InternalizedAnswer, InternalizedAnswer | None]], with_adapters: bool):
    from rich.table import Table

    table = Table(title="Adapter (no document in the prompt) vs in context", show_lines=True)
    table.add_column("question", ratio=2)
    if with_adapters:
        table.add_column("adapter answer", ratio=3)
        table.add_column("mode / s", no_wrap=True)
    table.add_column("in-context answer", ratio=3)
    table.add_column("prompt tok / s", no_wrap=True)
    for doc_id, question, asked, in_context in answers:
        row = [f"[dim]{doc_id}[/dim]\n{question}"]
        if with_adapters:
            row += [asked.text, f"{asked.mode}\n{asked.timings['total_s']:.2f}"]
        reference = in_context or asked
        row += [reference.text, f"{reference.prompt_tokens}\n{reference.timings['total_s']:.2f}"]
        table.add_row(*row)
    return table
