"""Errors raised by d2l-rag: one base class so callers can catch everything from the library."""

from __future__ import annotations

__all__ = [
    "AdapterMismatchError",
    "CheckpointMismatchError",
    "D2LError",
    "InvalidInputError",
    "ModelLoadError",
    "UnknownDocumentError",
]


class D2LError(Exception):
    """Base class of every error d2l-rag raises on purpose."""


class ModelLoadError(D2LError):
    """The base model path is missing or does not hold a loadable causal LM."""


class CheckpointMismatchError(D2LError):
    """A hypernetwork checkpoint was made for a different base model."""


class AdapterMismatchError(D2LError):
    """An adapter was made for a different base model or hypernetwork."""


class InvalidInputError(D2LError, ValueError):
    """A user-supplied value (text, question, id, tensor shape) is not usable."""


class UnknownDocumentError(D2LError, KeyError):
    """A document id that was never added (or was removed)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown document"
