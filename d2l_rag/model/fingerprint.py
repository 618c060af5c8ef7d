"""What a checkpoint or an adapter must match: the base model's shape and tokenizer, not its weights.

Weights are left out on purpose: the same GGUF dequantised on CPU or GPU, in fp32 or bf16, must match.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BaseFingerprint", "fingerprint_of"]


class BaseFingerprint(BaseModel):
    """Identity of a base model as far as a hypernetwork or adapter is concerned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str = Field(description="transformers architecture class, e.g. LlamaForCausalLM.")
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(ge=0)
    vocab_size: int = Field(gt=0)
    tokenizer_sha256: str = Field(min_length=64, max_length=64, description="Hash of the vocabulary (token -> id).")

    @property
    def id(self) -> str:
        """Short stable identifier (16 hex digits) used in cache keys and error messages."""
        blob = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.architecture}(layers={self.num_layers}, hidden={self.hidden_size}, id={self.id})"


def _tokenizer_sha256(tokenizer: Any) -> str:
    """The token -> id mapping alone: the list of special tokens a tokenizer reports varies between
    transformers releases (5.17 and 5.23 disagreed on the same GGUF), the vocabulary does not."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()


def fingerprint_of(model: Any, tokenizer: Any) -> BaseFingerprint:
    """Fingerprint a loaded transformers causal LM and its tokenizer."""
    config = model.config
    architectures = getattr(config, "architectures", None) or [type(model).__name__]
    return BaseFingerprint(
        architecture=architectures[0],
        num_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        intermediate_size=getattr(config, "intermediate_size", 0) or 0,
        vocab_size=config.vocab_size,
        tokenizer_sha256=_tokenizer_sha256(tokenizer),
    )
