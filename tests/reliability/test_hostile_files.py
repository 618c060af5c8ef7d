"""Hostile or mismatched files: nothing is ever unpickled, and a file made for another model is a clear error.

Every pickle here is live (the `payload` and `live_payload` fixtures of this folder's conftest): its `__reduce__`
creates the `marker` directory when unpickled (checked once, on purpose, by `live_payload`). After each refusal
the marker must not exist.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import diskcache
import pytest
import torch

from d2l_rag.adapters import AdapterBuilder, adapter_to_bytes, compose, load_adapter, save_adapter
from d2l_rag.config import HypernetConfig
from d2l_rag.errors import AdapterMismatchError, CheckpointMismatchError, D2LError, ModelLoadError
from d2l_rag.generation import Generator
from d2l_rag.internalizer import DocumentInternalizer
from d2l_rag.model import LoadedHypernetwork, load_base_model, load_checkpoint, save_checkpoint
from d2l_rag.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from d2l_rag.testing import tiny_llama

TEXT = "The code name of the project is Bluefin. The budget is 42 coins. " * 2


def _checkpoint_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# -- pickles are refused ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["hypernetwork.pt", "hypernetwork.bin", "pytorch_model.bin"])
def test_checkpoint_with_a_pickle_instead_of_safetensors_is_refused(
    name, tmp_path, tiny_checkpoint_dir, tiny_dir_lm, live_payload, marker
):
    directory = _checkpoint_copy(tiny_checkpoint_dir, tmp_path / "ckpt")
    (directory / WEIGHTS_NAME).unlink()
    (directory / name).write_bytes(live_payload)
    with pytest.raises(D2LError, match=rf"(?s){name}.*never unpickle"):
        load_checkpoint(directory, tiny_dir_lm)
    with pytest.raises(D2LError, match="never unpickle"):
        DocumentInternalizer(model=tiny_dir_lm, checkpoint=directory, cache_dir=tmp_path / "cache")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_pickle_named_safetensors_is_refused(
    kind, tmp_path, tiny_checkpoint_dir, tiny_dir_lm, live_payload, payload, marker
):
    directory = _checkpoint_copy(tiny_checkpoint_dir, tmp_path / "ckpt")
    if kind == "pickle":
        (directory / WEIGHTS_NAME).write_bytes(live_payload)
    else:
        torch.save({"weights": payload}, directory / WEIGHTS_NAME)
    with pytest.raises(D2LError, match="not a valid safetensors file"):
        load_checkpoint(directory, tiny_dir_lm)
    adapter_path = tmp_path / "adapter.safetensors"
    adapter_path.write_bytes((directory / WEIGHTS_NAME).read_bytes())
    with pytest.raises(D2LError, match="not a valid safetensors file"):
        load_adapter(adapter_path)
    assert not marker.exists()


def test_base_model_directory_with_a_pickle_is_refused(tmp_path, live_payload, payload, marker):
    """transformers loads `pytorch_model.bin` with `weights_only=True`: the payload is refused, not run."""
    directory = tmp_path / "model"
    lm = tiny_llama(seed=0)
    lm.model.save_pretrained(directory)
    lm.tokenizer.save_pretrained(directory)
    (directory / "model.safetensors").unlink()
    state = dict(lm.model.state_dict(), payload=payload)
    torch.save(state, directory / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=str(directory)):
        load_base_model(directory)
    assert not marker.exists()


def test_pickled_cache_entries_are_never_unpickled(tmp_path, make_internalizer, live_payload, payload, marker):
    """A cache directory is shared state: diskcache would unpickle any entry whose row says "pickle"."""
    cache_dir = tmp_path / "cache"
    internalizer = make_internalizer(cache_dir)
    internalizer.add("doc", TEXT)
    expected = adapter_to_bytes(internalizer.adapter("doc"))
    with diskcache.Cache(str(cache_dir / "adapters")) as raw:
        (key,) = list(raw.iterkeys())
        raw.set(key, payload)  # stored with MODE_PICKLE
    with pytest.warns(RuntimeWarning, match="pickle"):
        assert adapter_to_bytes(internalizer.adapter("doc")) == expected  # rebuilt
    with diskcache.Cache(str(cache_dir / "registry")) as raw:
        raw.set("doc:default:hostile", payload)  # a record that is a pickle
        raw.set(("key", payload), "x")  # a key that is a pickle
    with pytest.raises(D2LError, match="pickle"):
        internalizer.documents()
    with pytest.raises(D2LError, match="pickle"):
        internalizer.ask("What is the code name?", doc_id="hostile")
    assert internalizer.text("doc") == TEXT
    assert not marker.exists()


# -- files made for another model ---------------------------------------------------------------------------
def test_checkpoint_for_another_base_model_names_both_fingerprints(tmp_path, tiny_checkpoint_dir, tiny_dir_lm):
    other = tiny_llama(seed=0, num_layers=3)
    with pytest.raises(CheckpointMismatchError) as caught:
        load_checkpoint(tiny_checkpoint_dir, other)
    message = str(caught.value)
    assert tiny_dir_lm.fingerprint.id in message and other.fingerprint.id in message
    assert "num_layers: checkpoint has 2, base model has 3" in message
    with pytest.raises(CheckpointMismatchError, match=other.fingerprint.id):
        DocumentInternalizer(model=other, checkpoint=tiny_checkpoint_dir, cache_dir=tmp_path / "cache")


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory, tiny_dir_lm) -> LoadedHypernetwork:
    """A second checkpoint for the same base model (different weights, so a different id)."""
    network = LoadedHypernetwork.fresh(
        tiny_dir_lm, HypernetConfig(rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=64), seed=1
    ).network
    with torch.no_grad():
        network.out_scale.fill_(0.5)
    return load_checkpoint(save_checkpoint(network, tiny_dir_lm, tmp_path_factory.mktemp("other")), tiny_dir_lm)


def test_adapter_for_another_base_or_checkpoint_names_both_fingerprints(
    tmp_path, tiny_dir_lm, tiny_hypernet_loaded, other_checkpoint
):
    adapter = AdapterBuilder(tiny_dir_lm, tiny_hypernet_loaded).build(TEXT, "doc")
    path = save_adapter(adapter, tmp_path / "doc.safetensors")
    other_lm = tiny_llama(seed=0, hidden_size=32)
    with pytest.raises(AdapterMismatchError) as caught:
        load_adapter(path, base_fingerprint=other_lm.fingerprint.id)
    assert tiny_dir_lm.fingerprint.id in str(caught.value) and other_lm.fingerprint.id in str(caught.value)
    with pytest.raises(AdapterMismatchError) as caught:
        load_adapter(path, hypernet_id=other_checkpoint.id)
    assert tiny_hypernet_loaded.id in str(caught.value) and other_checkpoint.id in str(caught.value)
    with pytest.raises(AdapterMismatchError) as caught:
        Generator(other_lm).answer("What is the code name?", adapter=load_adapter(path))
    assert tiny_dir_lm.fingerprint.id in str(caught.value) and other_lm.fingerprint.id in str(caught.value)
    foreign = AdapterBuilder(tiny_dir_lm, other_checkpoint).build(TEXT, "doc")
    with pytest.raises(AdapterMismatchError) as caught:
        compose([adapter, foreign])
    assert tiny_hypernet_loaded.id in str(caught.value) and other_checkpoint.id in str(caught.value)


def test_cached_adapter_from_another_checkpoint_is_reported_and_rebuilt(
    tmp_path, tiny_dir_lm, other_checkpoint, make_internalizer
):
    """An entry whose header names another checkpoint (copied in, or a key collision) is never served."""
    cache_dir = tmp_path / "cache"
    ours = make_internalizer(cache_dir)
    ours.add("doc", TEXT)
    expected = adapter_to_bytes(ours.adapter("doc"))
    theirs = DocumentInternalizer(model=tiny_dir_lm, checkpoint=other_checkpoint, cache_dir=tmp_path / "other-cache")
    theirs.add("doc", TEXT)
    with (
        diskcache.Cache(str(cache_dir / "adapters")) as mine,
        diskcache.Cache(str(tmp_path / "other-cache" / "adapters")) as other,
    ):
        ((key,), (other_key,)) = list(mine.iterkeys()), list(other.iterkeys())
        mine.set(key, other[other_key])  # a valid entry with a valid checksum, made by the other checkpoint
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert adapter_to_bytes(ours.adapter("doc")) == expected
    message = " ".join(str(w.message) for w in caught)
    assert other_checkpoint.id in message and ours.hypernet.id in message


# -- config JSON ------------------------------------------------------------------------------------------
def _broken_configs(config: dict) -> dict[str, tuple[bytes, str]]:
    """name -> (config.json bytes, text the error must contain)."""

    def variant(path: list[str], value) -> bytes:
        copy = json.loads(json.dumps(config))
        target = copy
        for step in path[:-1]:
            target = target[step]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return json.dumps(copy).encode()

    return {
        "rank is text": (variant(["hypernet", "rank"], "eight"), "hypernet.rank"),
        "rank is negative": (variant(["hypernet", "rank"], -1), "hypernet.rank"),
        "heads do not divide width": (variant(["hypernet", "num_heads"], 5), "divisible by num_heads"),
        "base missing": (variant(["base"], KeyError), "base"),
        "unknown field": (variant(["surprise"], 1), "surprise"),
        "bad target name": (variant(["hypernet", "target_modules"], [".down_proj"]), "dotted module name"),
        "short tokenizer hash": (variant(["base", "tokenizer_sha256"], "abc"), "base.tokenizer_sha256"),
        "not JSON": (b"{'hypernet': 1", "Invalid JSON"),
        "a list": (b"[1, 2]", "CheckpointConfig"),
        "not UTF-8": (b'{"base_name": "\xff\xfe"}', CONFIG_NAME),
        "empty": (b"", "Invalid JSON"),
    }


def test_invalid_checkpoint_config_gives_a_readable_error(tmp_path, tiny_checkpoint_dir, tiny_dir_lm):
    config = json.loads((tiny_checkpoint_dir / CONFIG_NAME).read_text())
    directory = _checkpoint_copy(tiny_checkpoint_dir, tmp_path / "ckpt")
    cases = _broken_configs(config)
    for name, (raw, expected) in cases.items():
        (directory / CONFIG_NAME).write_bytes(raw)
        with pytest.raises(D2LError) as caught:
            load_checkpoint(directory, tiny_dir_lm)
        message = str(caught.value)
        assert expected in message and CONFIG_NAME in message, (name, message)
        assert "Traceback" not in message and len(message) < 2000, (name, message)
    print(f"\nfigures: invalid checkpoint configs tried={len(cases)}")
