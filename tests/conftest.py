"""Shared fixtures: a tiny random Llama (fast, no files) and the real SmolLM2 GGUF (loaded once)."""

from __future__ import annotations

import copy

import pytest
import torch

from d2l_rag.adapters import DocumentAdapter
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


def random_adapter(
    lm: FrozenLM, rank: int, seed: int, scale: float = 0.5, hypernet_id: str = "test"
) -> DocumentAdapter:
    """An adapter with random (non-trivial) A and B for `lm`'s mlp.down_proj."""
    g = torch.Generator().manual_seed(seed)
    cfg = lm.model.config
    a = torch.randn(cfg.num_hidden_layers, rank, cfg.intermediate_size, generator=g) * 0.3
    b = torch.randn(cfg.num_hidden_layers, cfg.hidden_size, rank, generator=g) * 0.3
    return DocumentAdapter(
        weights={"mlp.down_proj": (a, b)},
        base_fingerprint=lm.fingerprint.id,
        hypernet_id=hypernet_id,
        scale=scale,
        doc_ids=(f"doc{seed}",),
        chunk_count=1,
        token_count=10,
        source_sha256="0" * 64,
    )


def merged_copy(lm: FrozenLM, *adapters: DocumentAdapter) -> torch.nn.Module:
    """A deep copy of `lm.model` whose target weights hold `W + sum(scale * B @ A)`: the reference for parity."""
    from d2l_rag.model import find_target_modules

    model = copy.deepcopy(lm.model)
    with torch.no_grad():
        for adapter in adapters:
            for target, modules in find_target_modules(model, adapter.target_modules).items():
                for layer, module in enumerate(modules):
                    module.weight += adapter.delta_weight(target, layer).to(module.weight.dtype)
    return model


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
