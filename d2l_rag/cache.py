"""On-disk cache of adapters and of the document registry, shared safely between processes (diskcache).

Adapters are content-addressed: sha256(text) + hypernetwork id + base fingerprint + chunk size, so the same
text is encoded once across processes and restarts. Each entry is `sha256(blob) || safetensors blob`: a
changed byte on disk is detected, reported and rebuilt. The registry (doc id -> content hash, metadata)
and document texts live in a second cache that is never evicted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from d2l_rag.adapters.document_adapter import DocumentAdapter
from d2l_rag.adapters.io import adapter_from_bytes, adapter_to_bytes
from d2l_rag.errors import D2LError

__all__ = ["AdapterCache", "adapter_key", "text_sha256"]

logger = logging.getLogger(__name__)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def adapter_key(text_hash: str, hypernet_id: str, base_id: str, chunk_tokens: int) -> str:
    return f"adapter:{text_hash}:{hypernet_id}:{base_id}:{chunk_tokens}"


class AdapterCache:
    """Adapters (evictable, LRU, size-limited) and the registry (never evicted) under one directory."""

    def __init__(self, directory: str | Path, size_limit: int = 2**31) -> None:
        import diskcache

        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._adapters = diskcache.Cache(
            str(self.directory / "adapters"), size_limit=size_limit, eviction_policy="least-recently-used"
        )
        self._registry = diskcache.Cache(str(self.directory / "registry"), eviction_policy="none")

    # -- adapters -----------------------------------------------------------------------------------
    def get_adapter(self, key: str) -> DocumentAdapter | None:
        """The cached adapter, or None if absent or corrupted (a corrupted entry is dropped with a warning)."""
        blob = self._adapters.get(key)
        if blob is None:
            return None
        if not isinstance(blob, bytes) or len(blob) < 32 or hashlib.sha256(blob[32:]).digest() != blob[:32]:
            warnings.warn(f"cached adapter {key} failed its checksum; rebuilding it", RuntimeWarning, stacklevel=2)
            self._adapters.delete(key)
            return None
        try:
            return adapter_from_bytes(blob[32:], where=f"cached adapter {key}")
        except D2LError as exc:
            warnings.warn(f"{exc}; rebuilding it", RuntimeWarning, stacklevel=2)
            self._adapters.delete(key)
            return None

    def put_adapter(self, key: str, adapter: DocumentAdapter) -> None:
        blob = adapter_to_bytes(adapter)
        self._adapters.set(key, hashlib.sha256(blob).digest() + blob)

    def get_or_build(self, key: str, build: Callable[[], DocumentAdapter]) -> tuple[DocumentAdapter, bool]:
        """(adapter, built_now). A per-key lock makes concurrent processes wait instead of encoding twice."""
        import diskcache

        cached = self.get_adapter(key)
        if cached is not None:
            return cached, False
        with diskcache.Lock(self._registry, f"lock:{key}", expire=300):
            cached = self.get_adapter(key)
            if cached is not None:
                return cached, False
            adapter = build()
            self.put_adapter(key, adapter)
            return adapter, True

    # -- registry -----------------------------------------------------------------------------------
    def put_text(self, text: str) -> str:
        sha = text_sha256(text)
        key = f"text:{sha}"
        if key not in self._registry:
            self._registry.set(key, text)
        return sha

    def get_text(self, sha: str) -> str | None:
        return self._registry.get(f"text:{sha}")

    def put_record(self, collection: str, doc_id: str, record: dict[str, Any]) -> None:
        self._registry.set(f"doc:{collection}:{doc_id}", json.dumps(record))

    def get_record(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        raw = self._registry.get(f"doc:{collection}:{doc_id}")
        return None if raw is None else json.loads(raw)

    def delete_record(self, collection: str, doc_id: str) -> bool:
        return bool(self._registry.delete(f"doc:{collection}:{doc_id}"))

    def records(self, collection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        prefix = f"doc:{collection}:"
        for key in sorted(k for k in self._registry.iterkeys() if isinstance(k, str) and k.startswith(prefix)):
            raw = self._registry.get(key)
            if raw is not None:
                yield key[len(prefix) :], json.loads(raw)

    def collections(self) -> list[str]:
        names = {k.split(":", 2)[1] for k in self._registry.iterkeys() if isinstance(k, str) and k.startswith("doc:")}
        return sorted(names)

    # -- housekeeping -------------------------------------------------------------------------------
    @property
    def adapter_bytes(self) -> int:
        return int(self._adapters.volume())

    def __len__(self) -> int:
        return len(self._adapters)

    def clear(self) -> None:
        """Drop every adapter and every registered document."""
        self._adapters.clear()
        self._registry.clear()

    def close(self) -> None:
        self._adapters.close()
        self._registry.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._registry.transact():
            yield
