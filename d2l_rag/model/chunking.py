"""Token-based chunking: any length of text becomes chunks of at most `chunk_tokens` tokens."""

from __future__ import annotations

from typing import Any

from d2l_rag.errors import InvalidInputError

__all__ = ["chunk_ids", "tokenize_document"]


def tokenize_document(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a document, without BOS/EOS or chat markup (the chunk is raw context)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"document text must be str, got {type(text).__name__}")
    if not text.strip():
        raise InvalidInputError("document text is empty or whitespace only")
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def chunk_ids(ids: list[int], chunk_tokens: int) -> list[list[int]]:
    """Split ids into consecutive chunks of `chunk_tokens` (the last one may be shorter)."""
    if chunk_tokens <= 0:
        raise InvalidInputError(f"chunk_tokens must be > 0, got {chunk_tokens}")
    return [ids[i : i + chunk_tokens] for i in range(0, len(ids), chunk_tokens)]
