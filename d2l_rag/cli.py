"""`d2l-rag`: internalize documents, ask about them, export adapters, run the demo, train and evaluate.

Every command that answers questions builds one `DocumentInternalizer` from the global options (`--cache-dir`,
`--model`, `--checkpoint`). Errors the library raises on purpose (and bad paths) become one red line and exit
code 1, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from d2l_rag.errors import D2LError, InvalidInputError

__all__ = ["app", "main"]

_EXPECTED_ERRORS = (D2LError, ValueError, KeyError, OSError)


class _OneLineErrors(typer.core.TyperGroup):
    """Turns the library's expected errors into one red line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _EXPECTED_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            Console(stderr=True).print(
                f"[bold red]error:[/bold red] {escape(str(message))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_OneLineErrors,
    name="d2l-rag",
    help="Internalize documents into LoRA adapters and answer questions without the document in the prompt.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass(frozen=True)
class _Options:
    cache_dir: Path | None
    model: str | None
    checkpoint: Path | None
    max_new_tokens: int | None
    num_beams: int | None


def _load_model(model: str | None):
    """The frozen base model (tests replace this to reuse an already loaded one)."""
    from d2l_rag.model import load_base_model

    return load_base_model(model)


def _internalizer(ctx: typer.Context, collection: str = "default"):
    from d2l_rag.config import GenerationConfig, InternalizerConfig
    from d2l_rag.internalizer import DocumentInternalizer

    options: _Options = ctx.obj
    generation = {
        key: value
        for key, value in (("max_new_tokens", options.max_new_tokens), ("num_beams", options.num_beams))
        if value is not None
    }
    config = InternalizerConfig(generation=GenerationConfig(**generation))
    with Console(stderr=True).status("loading the model"):
        lm = _load_model(options.model)
        return DocumentInternalizer(
            model=lm, checkpoint=options.checkpoint, cache_dir=options.cache_dir, config=config, collection=collection
        )


@app.callback()
def _global_options(
    ctx: typer.Context,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Adapter cache and document registry (default: the per-user cache directory).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Base model: HF directory or .gguf file (default: the embedded SmolLM2-135M-Instruct)."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Hypernetwork checkpoint directory (default: the shipped one that fits the model)."),
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(min=1, help="Upper bound on answer length in tokens.")] = None,
    num_beams: Annotated[
        int | None,
        typer.Option(min=1, max=16, help="Beam search width (default 1, greedy); a beam answer prints when finished."),
    ] = None,
) -> None:
    ctx.obj = _Options(cache_dir, model, checkpoint, max_new_tokens, num_beams)


Collection = Annotated[str, typer.Option("--collection", "-c", help="Named group of documents.")]


@app.command()
def internalize(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help=".txt/.md/.rst files or directories to walk.")],
    collection: Collection = "default",
    overwrite: Annotated[bool, typer.Option(help="Replace documents whose text changed.")] = False,
) -> None:
    """Turn documents into cached adapters (the doc id is the file name, or the path inside a directory)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from d2l_rag.document_input import read_text_files

    docs = read_text_files(paths)  # bad paths fail before the model loads
    internalizer = _internalizer(ctx, collection)
    console = Console()
    with Progress(
        TextColumn("internalizing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("internalizing", total=None)
        infos = internalizer.add_many(
            docs, progress=lambda done, total: progress.update(task, completed=done, total=total), overwrite=overwrite
        )
    for info in infos:
        how = "adapter" if info.internalized else f"in context ({info.fallback_reason})"
        console.print(
            f"{info.doc_id}: {info.tokens} tokens, {info.chunks} chunks -> {how}", highlight=False, markup=False
        )
    console.print(f"{len(infos)} documents in collection {collection!r}, {internalizer.chunks_encoded} chunks encoded")


@app.command()
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question.")],
    doc: Annotated[list[str] | None, typer.Option("--doc", "-d", help="Document id (repeat to compose).")] = None,
    collection: Collection = "default",
    in_context: Annotated[bool, typer.Option("--in-context", help="Put the document in the prompt instead.")] = False,
) -> None:
    """Answer one question with the document's adapter (no --doc: the router picks the document)."""
    internalizer = _internalizer(ctx, collection)
    if in_context:
        if not doc or len(doc) != 1:
            raise InvalidInputError("--in-context needs exactly one --doc")
        answer = internalizer.ask_in_context(question, doc[0])
    elif doc and len(doc) > 1:
        answer = internalizer.ask(question, doc_ids=doc)
    else:
        answer = internalizer.ask(question, doc_id=doc[0] if doc else None)
    console = Console()
    console.print(answer.text, highlight=False, markup=False)
    console.print(_describe(answer), style="dim", highlight=False, markup=False)


def _describe(answer) -> str:
    parts = [f"mode={answer.mode}", f"docs={','.join(answer.doc_ids)}" + (" (routed)" if answer.routed else "")]
    if answer.adapter_rank:
        parts.append(f"rank={answer.adapter_rank}")
    if answer.context:
        parts.append(f"context={answer.context}")
    parts.append(f"{answer.completion_tokens} tokens in {answer.timings['total_s']:.2f}s")
    if answer.fallback_reason:
        parts.append(f"reason: {answer.fallback_reason}")
    return "[" + "; ".join(parts) + "]"


@app.command()
def chat(
    ctx: typer.Context,
    doc: Annotated[str, typer.Option("--doc", "-d", help="Document id.")],
    collection: Collection = "default",
) -> None:
    """Ask question after question about one document; `exit` or end of input (Ctrl-D) quits."""
    internalizer = _internalizer(ctx, collection)
    document = internalizer.document(doc)  # unknown ids fail before the first prompt
    console = Console()
    how = "its adapter" if document.internalized else f"in context ({document.fallback_reason})"
    console.print(f"Chatting with {doc!r} through {how}. Type `exit` or press Ctrl-D to quit.", markup=False)
    while True:
        try:
            question = console.input("[bold]you>[/bold] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        if question.lower() in {"exit", "quit"}:
            break
        if not question:
            continue
        stream = internalizer.stream(question, doc_id=doc)
        console.print("[bold]d2l>[/bold] ", end="")
        for piece in stream:
            console.print(piece, end="", highlight=False, markup=False)
        console.print()
        if stream.answer is not None:
            console.print(_describe(stream.answer), style="dim", highlight=False, markup=False)


@app.command("list")
def list_documents(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection.")] = None,
) -> None:
    """List registered documents (reads the registry only; no model is loaded)."""
    from d2l_rag.cache import AdapterCache
    from d2l_rag.internalizer import default_cache_dir

    options: _Options = ctx.obj
    cache = AdapterCache(options.cache_dir or default_cache_dir())
    names = [collection] if collection else cache.collections()
    table = Table(title=f"Documents in {cache.directory}")
    for column in ("collection", "doc id", "title", "tokens", "parts", "adapter"):
        table.add_column(column, justify="right" if column in ("tokens", "parts") else "left")
    rows = 0
    for name in names:
        for doc_id, record in cache.records(name):
            wanted = "yes" if record["internalize"] and not record.get("build_error") else "no (in context)"
            table.add_row(name, doc_id, record["title"], str(record["tokens"]), str(len(record["parts"])), wanted)
            rows += 1
    cache.close()
    if rows == 0:
        where = f"collection {collection!r}" if collection else "any collection"
        Console().print(f"No documents in {where}; add some with `d2l-rag internalize PATH`.")
        return
    Console().print(table)


@app.command()
def export(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the PEFT adapter into.")],
    doc: Annotated[str, typer.Option("--doc", "-d", help="Document id.")],
    collection: Collection = "default",
) -> None:
    """Write a document's adapter as a standard PEFT LoRA directory (PEFT, vLLM and LoRAX load it)."""
    from d2l_rag.adapters import export_peft

    internalizer = _internalizer(ctx, collection)
    adapter = internalizer.adapter(doc)
    path = export_peft(adapter, out_dir, base_model_name_or_path=internalizer.lm.name, model=internalizer.lm.model)
    Console().print(f"wrote {doc!r} (rank {adapter.rank}, {adapter.chunk_count} chunks) to {path}", highlight=False)


@app.command()
def info(ctx: typer.Context, collection: Collection = "default") -> None:
    """Model, hypernetwork checkpoint, chunk size and cache usage."""
    details = _internalizer(ctx, collection).info()
    details["cache_bytes"] = f"{details['cache_bytes'] / 2**20:.1f} MiB"
    console = Console()
    for key, value in details.items():
        console.print(f"{key:<18} {'-' if value is None else value}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def demo(
    ctx: typer.Context,
    questions: Annotated[int, typer.Option(min=1, help="Questions asked per sample document.")] = 3,
    collection: Collection = "demo",
) -> None:
    """Internalize the bundled samples and compare adapter answers with in-context answers."""
    from d2l_rag.demo import run_demo

    run_demo(_internalizer(ctx, collection), Console(), questions_per_document=questions)


@app.command()
def train(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option("--config", help="JSON file with TrainConfig fields.")],
    steps: Annotated[int | None, typer.Option(help="Override steps.")] = None,
    out: Annotated[Path | None, typer.Option(help="Override out_dir.")] = None,
    init: Annotated[str | None, typer.Option(help="Override init_checkpoint.")] = None,
) -> None:
    """Train a hypernetwork (same as `python -m d2l_rag.training`; works under `accelerate launch`).

    The global --model replaces the config's base model, so one recipe trains wherever the model file lives."""
    from d2l_rag.training.__main__ import main as train_main

    if not config.is_file():
        raise InvalidInputError(f"training config {config} does not exist")
    argv = [str(config)]
    options: _Options = ctx.obj  # set by the app callback before any command runs
    for flag, value in (("--steps", steps), ("--out", out), ("--init", init), ("--base-model", options.model)):
        if value is not None:
            argv += [flag, str(value)]
    train_main(argv)


@app.command("eval-niah")
def eval_niah(
    ctx: typer.Context,
    lengths: Annotated[str, typer.Option(help="Comma-separated document lengths in tokens.")] = "1024,2048",
    n: Annotated[int, typer.Option(min=1, help="Examples per length.")] = 10,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint to evaluate (default: the global --checkpoint).")
    ] = None,
    modes: Annotated[str, typer.Option(help="Comma-separated: adapter,in_context,no_document.")] = "adapter,in_context",
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 24,
    max_composed_chunks: Annotated[
        int | None,
        typer.Option(min=0, help="Chunks an adapter composes, most salient kept (default: checkpoint's; 0 = all)."),
    ] = None,
    magic: Annotated[
        str, typer.Option(help="What the needle hides: number (the reference test) or word (an invented name or code).")
    ] = "number",
) -> None:
    """Needle-in-a-haystack accuracy by length and mode (held-out magic numbers, or magic words)."""
    from d2l_rag.default_checkpoint import find_checkpoint
    from d2l_rag.model import load_checkpoint
    from d2l_rag.training.evaluate import MODES, niah_eval

    sizes = _int_list(lengths, "--lengths")
    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODES))
    if unknown or not chosen:
        raise InvalidInputError(f"--modes takes a comma-separated subset of {', '.join(MODES)}; got {modes!r}")
    if magic not in ("number", "word"):
        raise InvalidInputError(f"--magic takes number or word; got {magic!r}")
    options: _Options = ctx.obj
    lm = _load_model(options.model)
    path = checkpoint or options.checkpoint or find_checkpoint(lm)
    if path is None and "adapter" in chosen:
        raise InvalidInputError("no hypernetwork checkpoint fits this base model: pass --checkpoint or drop 'adapter'")
    hypernet = load_checkpoint(path, lm) if path is not None else None
    with Console(stderr=True).status("evaluating"):
        results = niah_eval(
            lm,
            hypernet,
            sizes,
            n,
            modes=chosen,
            max_new_tokens=max_new_tokens,
            max_chunks=max_composed_chunks,
            magic="word" if magic == "word" else "number",
        )
    table = Table(title=f"Needle in a haystack, magic {magic} ({n} per length)")
    table.add_column("tokens", justify="right")
    for mode in chosen:
        table.add_column(mode, justify="right")
    for size in sizes:
        cells = []
        for mode in chosen:
            result = results.get(mode, {}).get(str(size))
            cells.append("n/a" if not result else f"{result['accuracy']:.0%}")
        table.add_row(str(size), *cells)
    Console().print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"checkpoint": str(path) if path else None, "results": results}, indent=2))
        Console().print(f"wrote {out}", highlight=False)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise InvalidInputError(f"{flag} takes comma-separated positive integers, got {text!r}")
    return values


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
