"""On-disk cache of adapters and of the document registry, shared safely between processes (diskcache).

Adapters are content-addressed: sha256(text) + hypernetwork id + base fingerprint + chunk size, so the same
text is encoded once across processes and restarts. Each entry is `sha256(blob) || safetensors blob`: a
changed byte on disk is detected, reported and rebuilt. The registry (doc id -> content hash, metadata)
and document texts live in a second cache that is never evicted.
"""

from __future__ import annotations

import functools
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

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["AdapterCache", "adapter_key", "text_sha256"]

logger = logging.getLogger(__name__)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def adapter_key(text_hash: str, hypernet_id: str, base_id: str, chunk_tokens: int) -> str:
    return f"adapter:{text_hash}:{hypernet_id}:{base_id}:{chunk_tokens}"


def _check_key(key: str, adapter: DocumentAdapter) -> None:
    """The adapter's header must name the text, checkpoint and base model its key names."""
    _, text_hash, hypernet_id, base_id, _ = key.split(":")
    found = (adapter.source_sha256, adapter.hypernet_id, adapter.base_fingerprint)
    if found != (text_hash, hypernet_id, base_id):
        raise D2LError(
            f"cached adapter {key} was made for text {adapter.source_sha256[:16]}, checkpoint {adapter.hypernet_id} "
            f"and base model {adapter.base_fingerprint}, but its key names text {text_hash[:16]}, checkpoint "
            f"{hypernet_id} and base model {base_id}"
        )


@functools.cache
def _no_pickle_disk() -> type:
    """diskcache's storage minus unpickling.

    diskcache unpickles any value (or key) whose row says "pickle", so anyone who can write to a shared cache
    directory could run code in every process that reads it. d2l-rag stores only bytes and strings, so a pickle
    is never ours: values are refused with `D2LError`, keys are returned as opaque bytes (and ignored).
    """
    import diskcache

    class NoPickleDisk(diskcache.Disk):
        def get(self, key: Any, raw: bool) -> Any:
            return super().get(key, raw) if raw else bytes(key)

        def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
            if mode == diskcache.core.MODE_PICKLE:
                where = f"file {filename}" if filename else "an inline value"
                raise D2LError(f"cache entry ({where}) holds a pickle; d2l-rag never unpickles cache entries")
            return super().fetch(mode, filename, value, read)

    return NoPickleDisk


class AdapterCache:
    """Adapters (evictable, LRU, size-limited) and the registry (never evicted) under one directory."""

    def __init__(self, directory: str | Path, size_limit: int = 2**31) -> None:
        import diskcache

        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        disk = _no_pickle_disk()
        self._adapters = diskcache.Cache(
            str(self.directory / "adapters"), size_limit=size_limit, eviction_policy="least-recently-used", disk=disk
        )
        self._registry = diskcache.Cache(str(self.directory / "registry"), eviction_policy="none", disk=disk)

    # -- adapters -----------------------------------------------------------------------------------
    def get_adapter(self, key: str) -> DocumentAdapter | None:
        """The cached adapter, or None if absent or unusable (an unusable entry is dropped with a warning).

        Unusable: a pickle (never unpickled), bytes that fail their checksum, or an adapter whose header names
        another text, checkpoint or base model than its key (an entry copied in from elsewhere).
        """
        try:
            blob = self._adapters.get(key)
            if blob is None:
                return None
            if not isinstance(blob, bytes) or len(blob) < 32 or hashlib.sha256(blob[32:]).digest() != blob[:32]:
                raise D2LError(f"cached adapter {key} failed its checksum")
            adapter = adapter_from_bytes(blob[32:], where=f"cached adapter {key}")
            _check_key(key, adapter)
            return adapter
        except D2LError as exc:
            warnings.warn(f"{exc}; rebuilding it", RuntimeWarning, stacklevel=2)
            self._adapters.delete(key)
            return None

    def put_adapter(self, key: str, adapter: DocumentAdapter) -> None:
        blob = adapter_to_bytes(adapter)
        self._adapters.set(key, hashlib.sha256(blob).digest() + blob)

    def delete_adapter(self, key: str) -> bool:
        return bool(self._adapters.delete(key))

    def get_or_build(self, key: str, build: Callable[[], DocumentAdapter]) -> tuple[DocumentAdapter, bool]:
        """(adapter, built_now). A per-key lock makes concurrent processes wait instead of encoding twice."""
        cached = self.get_adapter(key)
        if cached is not None:
            return cached, False
        with self._build_lock(key):
            cached = self.get_adapter(key)
            if cached is not None:
                return cached, False
            adapter = build()
            self.put_adapter(key, adapter)
            return adapter, True

    @contextmanager
    def _build_lock(self, key: str) -> Iterator[None]:
        """An exclusive per-key lock (between processes and threads) that dies with its holder.

        flock on a lock file: the kernel releases it however the holder exits, so a SIGKILLed builder never
        makes the next request wait. (diskcache's Lock is a cache entry with an expiry: a dead holder blocked
        every other process for the full expiry.) Without fcntl (Windows) that Lock is the fallback.
        """
        if fcntl is None:
            import diskcache

            with diskcache.Lock(self._registry, f"lock:{key}", expire=300):
                yield
            return
        path = self.directory / "locks" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.lock"
        path.parent.mkdir(exist_ok=True)
        with open(path, "ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- registry -----------------------------------------------------------------------------------
    def put_text(self, text: str) -> str:
        sha = text_sha256(text)
        key = f"text:{sha}"
        if key not in self._registry or self._verified_text(sha) is None:  # absent, or damaged: store a good copy
            self._registry.set(key, text)
        return sha

    def get_text(self, sha: str) -> str | None:
        """The stored text, None if absent; `D2LError` if its bytes changed (a text cannot be rebuilt)."""
        if f"text:{sha}" not in self._registry:
            return None
        text = self._verified_text(sha)
        if text is None:
            raise D2LError(
                f"the stored text {sha[:16]} in {self.directory / 'registry'} is corrupted (its sha256 changed); "
                "remove the document and add it again"
            )
        return text

    def _verified_text(self, sha: str) -> str | None:
        text = self._registry.get(f"text:{sha}")
        return text if isinstance(text, str) and text_sha256(text) == sha else None

    def delete_text(self, sha: str) -> bool:
        return bool(self._registry.delete(f"text:{sha}"))

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
