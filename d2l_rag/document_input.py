"""What a document may be before it is registered: ids, collection names, text, and text files read from disk.

Every check raises `InvalidInputError` naming the document and the problem, before anything is encoded or stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from d2l_rag.errors import InvalidInputError

__all__ = ["TEXT_SUFFIXES", "check_collection", "check_doc_id", "check_length", "check_text", "read_text_files"]

TEXT_SUFFIXES = frozenset({".txt", ".md", ".rst", ".text", ".markdown"})


def read_text_files(paths: str | Path | Sequence[str | Path]) -> list[tuple[str, str]]:
    """(doc id, text) of .txt/.md/.rst files; directories are walked and ids are paths relative to them."""
    roots = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    docs: list[tuple[str, str]] = []
    for root in roots:
        if not root.exists():
            raise InvalidInputError(f"path {root} does not exist")
        if root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
            if not files:
                raise InvalidInputError(f"{root} holds no {'/'.join(sorted(TEXT_SUFFIXES))} files")
        else:
            files = [root]
        for path in files:
            raw = path.read_bytes()
            if b"\x00" in raw:
                raise InvalidInputError(f"{path} looks binary (contains NUL bytes); only text files can be added")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
            docs.append((path.relative_to(root).as_posix() if root.is_dir() else path.name, text))
    return docs


def check_collection(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or ":" in name or "\x00" in name:
        raise InvalidInputError(f"collection name must be a non-empty string without ':' or NUL, got {name!r}")
    return name


def check_doc_id(doc_id: Any) -> str:
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise InvalidInputError(f"doc_id must be a non-empty string, got {doc_id!r}")
    if "\x00" in doc_id:
        raise InvalidInputError("doc_id must not contain NUL characters")
    return doc_id


def check_length(chars: int, doc_id: str, limit: int | None) -> None:
    if limit is not None and chars > limit:
        raise InvalidInputError(
            f"document {doc_id!r} would have {chars:,} characters, over the limit of {limit:,} "
            "(InternalizerConfig.max_document_chars): split it into several documents or raise the limit"
        )


def check_text(text: Any, doc_id: str, max_chars: int | None = None) -> str:
    if isinstance(text, bytes):
        raise InvalidInputError(f"text of {doc_id!r} is bytes; decode it to str first")
    if not isinstance(text, str):
        raise InvalidInputError(f"text of {doc_id!r} must be str, got {type(text).__name__}")
    check_length(len(text), doc_id, max_chars)  # before anything that reads the whole text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"text of {doc_id!r} is not valid Unicode: lone surrogate at {exc.start}") from exc
    if not text.strip():
        raise InvalidInputError(f"text of {doc_id!r} is empty or whitespace only")
    if "\x00" in text:
        raise InvalidInputError(f"text of {doc_id!r} contains NUL characters")
    return text
