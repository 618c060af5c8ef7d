"""d2l-rag: internalize documents into LoRA adapters instead of retrieving them.

Public names are imported lazily so that `import d2l_rag.model` or `d2l_rag.training` needs only torch,
transformers and pydantic (the GPU machines have no diskcache or gguf).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AdapterBuilder": "d2l_rag.adapters",
    "AdapterMismatchError": "d2l_rag.errors",
    "Answer": "d2l_rag.generation",
    "CheckpointMismatchError": "d2l_rag.errors",
    "D2LError": "d2l_rag.errors",
    "DocumentAdapter": "d2l_rag.adapters",
    "DocumentInfo": "d2l_rag.internalizer",
    "DocumentInternalizer": "d2l_rag.internalizer",
    "GenerationConfig": "d2l_rag.config",
    "Generator": "d2l_rag.generation",
    "HypernetConfig": "d2l_rag.config",
    "InternalizedAnswer": "d2l_rag.answer",
    "InternalizerConfig": "d2l_rag.config",
    "InvalidInputError": "d2l_rag.errors",
    "ModelLoadError": "d2l_rag.errors",
    "RuntimeConfig": "d2l_rag.config",
    "UnknownDocumentError": "d2l_rag.errors",
    "compose": "d2l_rag.adapters",
    "export_peft": "d2l_rag.adapters",
    "load_adapter": "d2l_rag.adapters",
    "load_base_model": "d2l_rag.model",
    "save_adapter": "d2l_rag.adapters",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from d2l_rag.adapters import AdapterBuilder, DocumentAdapter, compose, export_peft, load_adapter, save_adapter
    from d2l_rag.answer import InternalizedAnswer
    from d2l_rag.config import GenerationConfig, HypernetConfig, InternalizerConfig, RuntimeConfig
    from d2l_rag.errors import (
        AdapterMismatchError,
        CheckpointMismatchError,
        D2LError,
        InvalidInputError,
        ModelLoadError,
        UnknownDocumentError,
    )
    from d2l_rag.generation import Answer, Generator
    from d2l_rag.internalizer import DocumentInfo, DocumentInternalizer
    from d2l_rag.model import load_base_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'd2l_rag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
