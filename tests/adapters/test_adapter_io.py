"""Adapters on disk: bit-exact round trips, base checks, and clean errors on anything that is not ours."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest
import torch

from d2l_rag.adapters import DocumentAdapter, adapter_from_bytes, adapter_to_bytes, load_adapter, save_adapter
from d2l_rag.errors import AdapterMismatchError, D2LError
from d2l_rag.testing import random_adapter

_FIELDS = ("base_fingerprint", "hypernet_id", "scale", "doc_ids", "chunk_count", "token_count", "source_sha256")


@pytest.fixture
def adapter(tiny_lm) -> DocumentAdapter:
    adapter = random_adapter(tiny_lm, 5, seed=3, scale=1 / 3)  # not exact in binary or decimal: repr must round-trip
    return replace(adapter, doc_ids=("Zürich notes", "doc/2"), metadata={"title": "Tessary — vault", "lang": "en"})


def _assert_identical(got: DocumentAdapter, expected: DocumentAdapter) -> None:
    assert got.target_modules == expected.target_modules
    for name, (a, b) in expected.weights.items():
        assert got.weights[name][0].dtype == a.dtype and torch.equal(got.weights[name][0], a)
        assert got.weights[name][1].dtype == b.dtype and torch.equal(got.weights[name][1], b)
    for field in _FIELDS:
        assert getattr(got, field) == getattr(expected, field), field
    assert dict(got.metadata) == dict(expected.metadata)


def test_save_load_round_trip_is_bit_exact(tmp_path, adapter):
    path = save_adapter(adapter, tmp_path / "sub" / "a.safetensors")
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temp file left behind
    _assert_identical(load_adapter(path), adapter)


def test_bf16_round_trip_is_bit_exact(tmp_path, adapter):
    small = adapter.to(dtype=torch.bfloat16)
    _assert_identical(load_adapter(save_adapter(small, tmp_path / "a.safetensors")), small)


def test_bytes_round_trip_is_bit_exact(adapter):
    blob = adapter_to_bytes(adapter)
    assert isinstance(blob, bytes) and len(blob) > adapter.nbytes
    _assert_identical(adapter_from_bytes(blob), adapter)


def test_loading_for_another_base_names_both_fingerprints(tmp_path, adapter):
    path = save_adapter(adapter, tmp_path / "a.safetensors")
    _assert_identical(load_adapter(path, base_fingerprint=adapter.base_fingerprint), adapter)
    pattern = rf"made for base model {adapter.base_fingerprint}, but the loaded base model is 0123456789abcdef"
    with pytest.raises(AdapterMismatchError, match=pattern):
        load_adapter(path, base_fingerprint="0123456789abcdef")


@pytest.mark.parametrize("keep", [0, 5, 8, 40, -1], ids=["empty", "5B", "8B", "40B", "all-but-1"])
def test_truncated_file_is_a_d2l_error(tmp_path, adapter, keep):
    blob = adapter_to_bytes(adapter)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(blob[:keep])
    with pytest.raises(D2LError, match=r"is not a valid safetensors file"):
        load_adapter(path)
    with pytest.raises(D2LError, match=r"is not a valid safetensors file"):
        adapter_from_bytes(blob[:keep])


def test_non_safetensors_file_is_a_d2l_error(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("just some text, definitely not a tensor file\n" * 4)
    with pytest.raises(D2LError, match=rf"{path} is not a valid safetensors file"):
        load_adapter(path)


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled!')",))


def test_pickle_is_refused_and_never_executed(tmp_path):
    path = tmp_path / "adapter.pt"
    torch.save({"mlp.down_proj.A": torch.zeros(2, 3, 4), "payload": _Boom()}, path)
    with pytest.raises(D2LError, match="is not a valid safetensors file"):
        load_adapter(path)
    with pytest.raises(D2LError, match="is not a valid safetensors file"):
        adapter_from_bytes(path.read_bytes())
    with pytest.raises(D2LError, match="is not a valid safetensors file"):
        adapter_from_bytes(pickle.dumps(_Boom()))


def test_foreign_safetensors_file_is_not_an_adapter(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(D2LError, match=r"is not a d2l-rag adapter \(format None"):
        load_adapter(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("targets", "5"),
        ("targets", "null"),
        ("targets", '["mlp.up_proj"]'),
        ("doc_ids", "5"),
        ("metadata", "[1]"),
        ("scale", "abc"),
        ("chunk_count", "1.5"),
    ],
)
def test_malformed_header_is_a_d2l_error(adapter, field, value):
    from safetensors.torch import save

    from d2l_rag.adapters.io import _tensors_and_header

    tensors, header = _tensors_and_header(adapter)
    with pytest.raises(D2LError, match="has a malformed adapter header"):
        adapter_from_bytes(save(tensors, metadata={**header, field: value}))


def test_tensor_of_the_wrong_shape_is_a_d2l_error(adapter):
    from safetensors.torch import save

    from d2l_rag.adapters.io import _tensors_and_header

    tensors, header = _tensors_and_header(adapter)
    tensors["mlp.down_proj.A"] = torch.zeros(2, 3)
    with pytest.raises(D2LError, match=r"malformed adapter header: mlp.down_proj: A \(2, 3\)"):
        adapter_from_bytes(save(tensors, metadata=header))


def test_missing_file_is_a_d2l_error(tmp_path):
    with pytest.raises(D2LError, match="not found"):
        load_adapter(tmp_path / "nope.safetensors")
