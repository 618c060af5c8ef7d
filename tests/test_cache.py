"""AdapterCache: content-addressed adapters (LRU, size-limited) and a registry that is never evicted.

Corruption, hostile entries and concurrency are covered in tests/reliability; these are the everyday contracts.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from d2l_rag.cache import AdapterCache, adapter_key, text_sha256
from d2l_rag.testing import random_adapter


def keyed(lm, seed: int, text: str, rank: int = 4):
    """An adapter and the key the internalizer would file it under (headers must match the key)."""
    adapter = replace(random_adapter(lm, rank, seed), source_sha256=text_sha256(text))
    return adapter_key(text_sha256(text), adapter.hypernet_id, adapter.base_fingerprint, 64), adapter


def test_adapters_round_trip_across_instances(tiny_lm, tmp_path) -> None:
    key, adapter = keyed(tiny_lm, 1, "text one")
    AdapterCache(tmp_path).put_adapter(key, adapter)
    again = AdapterCache(tmp_path).get_adapter(key)  # a fresh instance, as a second process would open it
    assert again is not None and again.rank == adapter.rank
    for name, (a, b) in adapter.weights.items():
        assert torch.equal(again.weights[name][0], a) and torch.equal(again.weights[name][1], b)
    other_key, _ = keyed(tiny_lm, 1, "another text")
    assert AdapterCache(tmp_path).get_adapter(other_key) is None


def test_get_or_build_builds_once(tiny_lm, tmp_path) -> None:
    cache = AdapterCache(tmp_path)
    key, adapter = keyed(tiny_lm, 2, "text two")
    calls = []

    def build():
        calls.append(1)
        return adapter

    assert cache.get_or_build(key, build)[1] is True
    assert cache.get_or_build(key, build)[1] is False
    assert AdapterCache(tmp_path).get_or_build(key, build)[1] is False
    assert len(calls) == 1


def test_size_limit_evicts_least_recently_used(tiny_lm, tmp_path) -> None:
    entries = [keyed(tiny_lm, seed, f"text {seed}", rank=16) for seed in range(6)]
    baseline = AdapterCache(tmp_path / "empty").adapter_bytes  # sqlite pages of an empty cache count too
    limit = baseline + 3 * (entries[0][1].nbytes + 4096)
    cache = AdapterCache(tmp_path / "small", size_limit=limit)
    for key, adapter in entries:
        cache.put_adapter(key, adapter)
        cache._adapters.cull()  # diskcache culls lazily; make the limit observable now
    assert 0 < len(cache) < len(entries)
    assert cache.adapter_bytes <= limit
    assert cache.get_adapter(entries[-1][0]) is not None  # the newest survives
    assert cache.get_adapter(entries[0][0]) is None  # the oldest went first


def test_registry_records_texts_collections_and_clear(tiny_lm, tmp_path) -> None:
    cache = AdapterCache(tmp_path)
    sha = cache.put_text("hello")
    assert sha == text_sha256("hello") and cache.get_text(sha) == "hello"
    cache.put_record("a", "doc", {"parts": [sha]})
    cache.put_record("b", "doc", {"parts": [sha]})
    cache.put_record("b", "other", {"parts": []})
    assert cache.collections() == ["a", "b"]
    assert [d for d, _ in cache.records("b")] == ["doc", "other"]
    assert cache.get_record("a", "doc") == {"parts": [sha]}
    assert cache.delete_record("a", "doc") and cache.get_record("a", "doc") is None
    assert not cache.delete_record("a", "doc")
    assert cache.delete_text(sha) and cache.get_text(sha) is None
    key, adapter = keyed(tiny_lm, 3, "text three")
    cache.put_adapter(key, adapter)
    assert cache.delete_adapter(key) and cache.get_adapter(key) is None
    cache.put_adapter(key, adapter)
    cache.clear()
    assert len(cache) == 0 and cache.collections() == []


@pytest.mark.parametrize("chunk_tokens", [64, 1024])
def test_keys_name_text_checkpoint_base_and_chunk_size(chunk_tokens) -> None:
    key = adapter_key("t" * 64, "h" * 16, "b" * 16, chunk_tokens)
    assert key == f"adapter:{'t' * 64}:{'h' * 16}:{'b' * 16}:{chunk_tokens}"
