"""Adapters on disk: one safetensors file, tensors plus metadata in its header. Never pickle."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError

from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.errors import AdapterMismatchError, D2LError

__all__ = ["adapter_from_bytes", "adapter_to_bytes", "load_adapter", "save_adapter"]

_FORMAT = "d2l-rag-adapter/1"


def _tensors_and_header(adapter: DocumentAdapter) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = {}
    for name, (a, b) in adapter.weights.items():
        tensors[f"{name}.A"] = a.detach().to("cpu").contiguous()
        tensors[f"{name}.B"] = b.detach().to("cpu").contiguous()
    header = {
        "format": _FORMAT,
        "targets": json.dumps(list(adapter.target_modules)),
        "base_fingerprint": adapter.base_fingerprint,
        "hypernet_id": adapter.hypernet_id,
        "scale": repr(float(adapter.scale)),
        "doc_ids": json.dumps(list(adapter.doc_ids)),
        "chunk_count": str(adapter.chunk_count),
        "token_count": str(adapter.token_count),
        "source_sha256": adapter.source_sha256,
        "metadata": json.dumps(dict(adapter.metadata)),
    }
    return tensors, header


def save_adapter(adapter: DocumentAdapter, path: str | Path) -> Path:
    """Write atomically (temp file + rename): a crash never leaves a half-written adapter at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = adapter_to_bytes(adapter)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def adapter_to_bytes(adapter: DocumentAdapter) -> bytes:
    """The adapter as safetensors bytes; equal adapters give equal bytes, in any process."""
    from safetensors.torch import save

    tensors, header = _tensors_and_header(adapter)
    return _canonical(save(tensors, metadata=header))


def _canonical(blob: bytes) -> bytes:
    """Re-serialise the JSON header with sorted keys.

    safetensors writes `__metadata__` in hash-map order, which changes from process to process, so the same
    adapter would get different bytes (and checksums) in two processes. Data offsets are relative to the end of
    the header, so only the 8-byte length prefix changes with it; the header is space-padded to 8 bytes.
    """
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = header.encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + size :]


def _from_parts(tensors: dict[str, torch.Tensor], header: dict[str, str], where: str) -> DocumentAdapter:
    if header.get("format") != _FORMAT:
        raise D2LError(f"{where} is not a d2l-rag adapter (format {header.get('format')!r}, expected {_FORMAT!r})")
    try:
        targets = json.loads(header["targets"])
        weights = {t: (tensors[f"{t}.A"], tensors[f"{t}.B"]) for t in targets}
        return DocumentAdapter(
            weights=weights,
            base_fingerprint=header["base_fingerprint"],
            hypernet_id=header["hypernet_id"],
            scale=float(header["scale"]),
            doc_ids=tuple(json.loads(header["doc_ids"])),
            chunk_count=int(header["chunk_count"]),
            token_count=int(header["token_count"]),
            source_sha256=header["source_sha256"],
            metadata=json.loads(header["metadata"]),
        )
    except (KeyError, ValueError, TypeError) as exc:  # TypeError: a header field of the wrong JSON type
        raise D2LError(f"{where} has a malformed adapter header: {exc}") from exc


def _header_of(blob: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors blob: 8-byte little-endian length, then a JSON header."""
    if len(blob) < 8:
        raise ValueError(f"{len(blob)} bytes is too short for a safetensors file")
    size = int.from_bytes(blob[:8], "little")
    if size > len(blob) - 8:
        raise ValueError(f"header length {size} exceeds the {len(blob) - 8} bytes available")
    return dict(json.loads(blob[8 : 8 + size]).get("__metadata__") or {})


def adapter_from_bytes(blob: bytes, where: str = "adapter bytes") -> DocumentAdapter:
    from safetensors.torch import load

    try:
        header = _header_of(blob)
        tensors = load(blob)
    except (SafetensorError, OSError, ValueError) as exc:
        raise D2LError(f"{where} is not a valid safetensors file: {exc}") from exc
    return _from_parts(tensors, header, where)


def load_adapter(
    path: str | Path, base_fingerprint: str | None = None, hypernet_id: str | None = None
) -> DocumentAdapter:
    """Load an adapter; with `base_fingerprint` / `hypernet_id`, refuse one made for another base or checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise D2LError(f"adapter file {path} not found")
    adapter = adapter_from_bytes(path.read_bytes(), where=str(path))
    if base_fingerprint is not None and adapter.base_fingerprint != base_fingerprint:
        raise AdapterMismatchError(
            f"{path} was made for base model {adapter.base_fingerprint}, but the loaded base model is "
            f"{base_fingerprint}"
        )
    if hypernet_id is not None and adapter.hypernet_id != hypernet_id:
        raise AdapterMismatchError(
            f"{path} was made by hypernetwork checkpoint {adapter.hypernet_id}, but the loaded checkpoint is "
            f"{hypernet_id}"
        )
    return adapter
