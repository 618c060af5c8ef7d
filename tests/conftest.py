"""Shared fixtures: a tiny random Llama (fast, no files) and the real SmolLM2 GGUF (loaded once)."""

from __future__ import annotations

import pytest
import torch

from d2l_rag.config import HypernetConfig
from d2l_rag.model import FrozenLM, LoadedHypernetwork
from d2l_rag.testing import tiny_llama


@pytest.fixture(scope="session")
def tiny_lm() -> FrozenLM:
    return tiny_llama(seed=0)


@pytest.fixture(scope="session")
def tiny_hypernet_config() -> HypernetConfig:
    return HypernetConfig(rank=4, width=32, num_heads=4, num_blocks=1, chunk_tokens=64)


@pytest.fixture(scope="session")
def tiny_hypernet(tiny_lm: FrozenLM, tiny_hypernet_config: HypernetConfig) -> LoadedHypernetwork:
    return LoadedHypernetwork.fresh(tiny_lm, tiny_hypernet_config)


@pytest.fixture(scope="session")
def default_lm() -> FrozenLM:
    from d2l_rag.model import load_base_model

    return load_base_model()


@pytest.fixture(scope="session")
def random_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory, default_lm: FrozenLM):
    """A checkpoint for the default model whose adapters are non-trivial (random output scalers).

    Tests of caching, composition and plumbing use it so they do not depend on the shipped checkpoint's quality.
    """
    from d2l_rag.model import save_checkpoint

    config = HypernetConfig(rank=4, width=64, num_heads=4, num_blocks=1, chunk_tokens=256)
    loaded = LoadedHypernetwork.fresh(default_lm, config, seed=0)
    with torch.no_grad():
        loaded.network.out_scale.normal_(0.0, 0.02, generator=torch.Generator().manual_seed(0))
    return save_checkpoint(loaded.network, default_lm, tmp_path_factory.mktemp("checkpoint") / "random")
