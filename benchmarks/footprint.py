"""Bytes a document costs at question time: its adapter vs the KV cache of having it in the prompt.

Computed from the model config (exact for both): the KV cache holds keys and values for every layer, KV head and
token; the adapter holds rank r per chunk of A (r x d_in) and B (d_out x r) for every target module and layer,
plus a static bias LoRA once if the hypernetwork has one. Both are counted in the same dtype (bf16 by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from d2l_rag.model.base import FrozenLM
from d2l_rag.model.checkpoint import LoadedHypernetwork
from d2l_rag.model.targets import find_target_modules

__all__ = ["adapter_bytes", "kv_cache_bytes", "run_footprint"]


def kv_cache_bytes(lm: FrozenLM, tokens: int, bytes_per_value: int = 2) -> int:
    cfg = lm.model.config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * tokens * bytes_per_value


def adapter_bytes(lm: FrozenLM, hypernet: LoadedHypernetwork, tokens: int, bytes_per_value: int = 2) -> int:
    config = hypernet.config.hypernet
    chunks = math.ceil(tokens / config.chunk_tokens)
    rank = chunks * config.rank + config.bias_rank
    per_rank = sum(
        mods[0].in_features + mods[0].out_features
        for mods in find_target_modules(lm.model, config.target_modules).values()
    )
    return lm.num_layers * rank * per_rank * bytes_per_value


def run_footprint(lm: FrozenLM, hypernet: LoadedHypernetwork, lengths: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for tokens in lengths:
        kv, adapter = kv_cache_bytes(lm, tokens), adapter_bytes(lm, hypernet, tokens)
        rows.append(
            {
                "tokens": tokens,
                "kv_cache_bytes": kv,
                "adapter_bytes": adapter,
                "adapter_over_kv": adapter / kv,
                "fits_window": tokens <= lm.context_window,
            }
        )
    return rows
