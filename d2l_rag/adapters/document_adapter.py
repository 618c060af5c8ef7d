"""`DocumentAdapter`: a document's LoRA as plain tensors plus the facts needed to trust it later."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import torch

from d2l_rag.errors import AdapterMismatchError, InvalidInputError

__all__ = ["DocumentAdapter"]


@dataclass(frozen=True)
class DocumentAdapter:
    """Per target module: A of shape (layers, rank, d_in) and B of shape (layers, d_out, rank).

    Immutable: composition and appending return new adapters. Not an `nn.Module` and registers nothing on
    the base model; it is applied functionally by `d2l_rag.model.apply_lora`.
    """

    weights: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    base_fingerprint: str
    hypernet_id: str
    scale: float = 1.0
    doc_ids: tuple[str, ...] = ()
    chunk_count: int = 0
    token_count: int = 0
    source_sha256: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.weights:
            raise InvalidInputError("an adapter needs at least one target module")
        ranks = set()
        for name, (a, b) in self.weights.items():
            if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[1] != b.shape[2]:
                raise InvalidInputError(
                    f"{name}: A {tuple(a.shape)} and B {tuple(b.shape)} are not (layers, rank, d_in) and "
                    "(layers, d_out, rank) with matching layers and rank"
                )
            ranks.add(a.shape[1])
        if len(ranks) != 1:
            raise InvalidInputError(f"all target modules need the same rank, got {sorted(ranks)}")
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def rank(self) -> int:
        a, _ = next(iter(self.weights.values()))
        return int(a.shape[1])

    @property
    def num_layers(self) -> int:
        a, _ = next(iter(self.weights.values()))
        return int(a.shape[0])

    @property
    def target_modules(self) -> tuple[str, ...]:
        return tuple(self.weights)

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors (what an adapter costs in memory or on disk, before headers)."""
        return sum(a.numel() * a.element_size() + b.numel() * b.element_size() for a, b in self.weights.values())

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> DocumentAdapter:
        moved = {
            n: (a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype))
            for n, (a, b) in self.weights.items()
        }
        return replace(self, weights=moved)

    def check_compatible(self, other: DocumentAdapter) -> None:
        """Raise unless `other` can be concatenated with this adapter (same base, hypernetwork, targets, scale)."""
        if other.base_fingerprint != self.base_fingerprint:
            raise AdapterMismatchError(
                f"adapters for different base models: {self.base_fingerprint} vs {other.base_fingerprint}"
            )
        if other.hypernet_id != self.hypernet_id:
            raise AdapterMismatchError(
                f"adapters from different hypernetworks: {self.hypernet_id} vs {other.hypernet_id}"
            )
        if other.target_modules != self.target_modules or other.scale != self.scale:
            raise AdapterMismatchError(
                f"adapters with different targets/scale: {self.target_modules}@{self.scale} vs "
                f"{other.target_modules}@{other.scale}"
            )

    def delta_weight(self, target: str, layer: int) -> torch.Tensor:
        """The merged weight update `scale * B @ A` of one module: (d_out, d_in)."""
        a, b = self.weights[target]
        return self.scale * b[layer] @ a[layer]
