"""Damaged bytes on disk: detected by checksum, reported with a warning, rebuilt; a truncated file is a clear error.

Cached adapters live either inside the cache's SQLite file (small ones) or as files next to it (> 32 kB); both
are damaged here, byte by byte, by truncation and by deletion. Truncated or garbled safetensors files and
checkpoints must raise `D2LError`, never crash in native code.
"""

from __future__ import annotations

import random
import sqlite3
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from d2l_rag.adapters import DocumentAdapter, adapter_from_bytes, adapter_to_bytes, load_adapter
from d2l_rag.cache import text_sha256
from d2l_rag.errors import D2LError
from d2l_rag.model import load_checkpoint
from d2l_rag.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME

BYTE_FLIPS = 24  # per storage kind
TRUNCATIONS = 8
SMALL = "The code name of the project is Bluefin. " * 1  # 1 chunk: stored inside SQLite
LARGE = "The code name of the project is Bluefin. The budget is 42 coins. " * 12  # 13 chunks: a file


def _row(cache_dir: Path, text: str) -> tuple[str, str | None, bytes | None]:
    """(key, file name, inline value) of the cached adapter of `text`."""
    with sqlite3.connect(cache_dir / "adapters" / "cache.db") as db:
        rows = db.execute("SELECT key, filename, value FROM Cache").fetchall()
    (row,) = [r for r in rows if r[0].split(":")[1] == text_sha256(text)]
    return row


def _adapter_file(cache_dir: Path, text: str) -> Path:
    """The file that holds the cached adapter of `text` (one stored as a file, not inline)."""
    return cache_dir / "adapters" / _row(cache_dir, text)[1]


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]


def _rebuilt(internalizer, doc_id: str, expected: bytes, match: str | None) -> None:
    """Fetching the adapter warns (when `match`), re-encodes it, and gives the original bytes."""
    before = internalizer.chunks_encoded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = adapter_to_bytes(internalizer.adapter(doc_id))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if match is None:
        assert not messages
    else:
        assert any(match in m for m in messages), messages
    assert internalizer.chunks_encoded > before, "the damaged adapter was served instead of rebuilt"
    assert got == expected


@pytest.fixture()
def cached(tmp_path, make_internalizer):
    internalizer = make_internalizer(tmp_path / "cache")
    internalizer.add("small", SMALL)
    internalizer.add("large", LARGE)
    expected = {d: adapter_to_bytes(internalizer.adapter(d)) for d in ("small", "large")}
    assert _row(tmp_path / "cache", SMALL)[1] is None, "the small adapter should be stored inline"
    assert _row(tmp_path / "cache", LARGE)[1] is not None, "the large adapter should be stored as a file"
    return internalizer, tmp_path / "cache", expected


def test_changed_bytes_are_detected_reported_and_rebuilt(cached):
    internalizer, cache_dir, expected = cached
    rng = random.Random(0)
    for _ in range(BYTE_FLIPS):
        path = _adapter_file(cache_dir, LARGE)
        data = path.read_bytes()
        path.write_bytes(_flip(data, rng.randrange(len(data))))
        _rebuilt(internalizer, "large", expected["large"], match="checksum")
    for _ in range(BYTE_FLIPS):
        key, _, value = _row(cache_dir, SMALL)
        with sqlite3.connect(cache_dir / "adapters" / "cache.db") as db:
            db.execute("UPDATE Cache SET value = ? WHERE key = ?", (_flip(value, rng.randrange(len(value))), key))
        _rebuilt(internalizer, "small", expected["small"], match="checksum")


def test_truncated_or_deleted_entry_is_rebuilt(cached):
    internalizer, cache_dir, expected = cached
    rng = random.Random(1)
    for _ in range(TRUNCATIONS):
        path = _adapter_file(cache_dir, LARGE)
        data = path.read_bytes()
        path.write_bytes(data[: rng.randrange(len(data))])
        _rebuilt(internalizer, "large", expected["large"], match="checksum")
    _adapter_file(cache_dir, LARGE).unlink()  # a missing file is a cache miss, not a corruption
    _rebuilt(internalizer, "large", expected["large"], match=None)


def test_corrupted_document_text_is_a_clear_error(tmp_path, make_internalizer):
    """Texts are the source of truth (they cannot be rebuilt): a changed one must not be used silently."""
    internalizer = make_internalizer(tmp_path / "cache", adapters=False)
    text = "The code name of the project is Bluefin. " * 1000  # > 32 k characters: stored as a file
    internalizer.add("doc", text)
    internalizer.add("copy", text)  # shares the stored text
    (path,) = (tmp_path / "cache" / "registry").rglob("*.val")
    path.write_text(path.read_text(encoding="utf-8").replace("Bluefin", "Redfish", 1), encoding="utf-8")
    with pytest.raises(D2LError, match="corrupted"):
        internalizer.text("doc")
    with pytest.raises(D2LError, match="corrupted"):
        internalizer.ask("What is the code name of the project?", doc_id="doc")
    internalizer.remove("doc")  # "copy" still holds the damaged text, so it stays stored
    internalizer.add("doc", text)  # the good text again replaces the damaged copy
    assert internalizer.text("doc") == internalizer.text("copy") == text


@pytest.fixture(scope="module")
def adapter_blob(tiny_dir_lm, tiny_hypernet_loaded) -> bytes:
    from d2l_rag.adapters import AdapterBuilder

    builder = AdapterBuilder(tiny_dir_lm, tiny_hypernet_loaded)
    return adapter_to_bytes(builder.build("The code name of the project is Bluefin. " * 4, "doc"))


def test_every_truncation_of_an_adapter_is_a_clear_error(adapter_blob, tmp_path):
    header = int.from_bytes(adapter_blob[:8], "little") + 8
    cuts = list(range(header + 16)) + random.Random(2).sample(range(header + 16, len(adapter_blob)), 200)
    for cut in cuts:
        with pytest.raises(D2LError, match="adapter bytes"):
            adapter_from_bytes(adapter_blob[:cut])
    path = tmp_path / "adapter.safetensors"
    for cut in cuts[::10]:
        path.write_bytes(adapter_blob[:cut])
        with pytest.raises(D2LError, match=str(path)):
            load_adapter(path)
    print(f"\nfigures: truncated adapters tried={len(cuts)} (bytes) + {len(cuts[::10])} (files)")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_garbled_adapter_bytes_load_or_raise_d2l_error(adapter_blob, data):
    """Any mix of flipped bytes and cuts: a valid adapter (data bytes carry no checksum here) or `D2LError`."""
    blob = bytearray(adapter_blob)
    for offset in data.draw(st.lists(st.integers(0, len(blob) - 1), max_size=4)):
        blob[offset] = data.draw(st.integers(0, 255))
    blob = bytes(blob[: data.draw(st.integers(0, len(blob)))])
    try:
        adapter = adapter_from_bytes(blob)
    except D2LError:
        event("refused with D2LError")
        return
    event("loaded (only tensor data bytes changed)")
    assert isinstance(adapter, DocumentAdapter)


def test_truncated_checkpoint_is_a_clear_error(tmp_path, tiny_checkpoint_dir, tiny_dir_lm):
    weights = (tiny_checkpoint_dir / WEIGHTS_NAME).read_bytes()
    config = (tiny_checkpoint_dir / CONFIG_NAME).read_bytes()
    rng = random.Random(3)
    broken = tmp_path / "broken"
    broken.mkdir()
    tried = 0
    for cut in [0, 4, 8, 9, 100, *rng.sample(range(len(weights)), 30)]:
        (broken / WEIGHTS_NAME).write_bytes(weights[:cut])
        (broken / CONFIG_NAME).write_bytes(config)
        with pytest.raises(D2LError, match=WEIGHTS_NAME):
            load_checkpoint(broken, tiny_dir_lm)
        tried += 1
    (broken / WEIGHTS_NAME).write_bytes(weights)
    for cut in [0, 1, len(config) // 2, len(config) - 2]:
        (broken / CONFIG_NAME).write_bytes(config[:cut])
        with pytest.raises(D2LError, match=CONFIG_NAME):
            load_checkpoint(broken, tiny_dir_lm)
        tried += 1
    print(f"\nfigures: truncated checkpoints tried={tried}")
