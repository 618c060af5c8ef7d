"""Base model loading errors and the fingerprint (shape + tokenizer, never weights)."""

from __future__ import annotations

import pytest

from d2l_rag.errors import ModelLoadError
from d2l_rag.model import FrozenLM, fingerprint_of, load_base_model
from d2l_rag.model.base import resolve_device_dtype
from d2l_rag.testing import tiny_llama


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match=rf"model path {missing} does not exist"):
        load_base_model(missing)


def test_non_model_file_names_the_path(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a model")
    with pytest.raises(ModelLoadError, match=rf"{path} is a file but not a .gguf model"):
        load_base_model(path)


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is plain text with a .gguf name",
        b"GGUF" + bytes(range(200)),  # the magic, then garbage
        b"GGUF\x03\x00\x00\x00" + b"\x01" * 4,  # a v3 header cut short
    ],
    ids=["text", "garbage", "truncated"],
)
def test_bad_gguf_file_names_the_path(tmp_path, content):
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=rf"could not load a causal LM from {path}"):
        load_base_model(path)


def test_directory_without_a_model_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=rf"{tmp_path} has no config.json"):
        load_base_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=rf"could not load a causal LM from {tmp_path}"):
        load_base_model(tmp_path)


def test_bad_dtype_is_a_load_error():
    with pytest.raises(ModelLoadError, match=r"dtype must be one of .*got 'float8'"):
        resolve_device_dtype("cpu", "float8")


def test_frozen_lm_is_frozen_and_in_eval(tiny_lm):
    assert not tiny_lm.model.training
    assert not any(p.requires_grad for p in tiny_lm.model.parameters())
    assert tiny_lm.num_layers == 2 and tiny_lm.context_window == 4096


def test_fingerprint_ignores_weights_but_not_shape_or_tokenizer(tiny_lm):
    assert tiny_llama(seed=1).fingerprint == tiny_lm.fingerprint  # other weights, same base
    assert tiny_llama(num_layers=3).fingerprint.id != tiny_lm.fingerprint.id
    assert tiny_llama(hidden_size=32).fingerprint.id != tiny_lm.fingerprint.id
    tokenizer = tiny_llama().tokenizer
    tokenizer.add_tokens(["<extra>"])
    assert fingerprint_of(tiny_lm.model, tokenizer).id != tiny_lm.fingerprint.id
    assert len(tiny_lm.fingerprint.id) == 16
    assert tiny_lm.fingerprint.describe() == f"LlamaForCausalLM(layers=2, hidden=64, id={tiny_lm.fingerprint.id})"


def test_pad_token_defaults_to_eos():
    lm = tiny_llama()
    tokenizer = lm.tokenizer
    tokenizer.pad_token = None
    assert FrozenLM(model=lm.model, tokenizer=tokenizer).tokenizer.pad_token == tokenizer.eos_token
