"""Pydantic configs reject bad values and bad combinations at construction, with readable messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from d2l_rag.config import GenerationConfig, HypernetConfig, RuntimeConfig


def test_defaults_match_the_reference_recipe():
    config = HypernetConfig()
    assert config.target_modules == ("mlp.down_proj",)
    assert config.rank == 8 and config.chunk_tokens == 1024 and config.bias_rank == 0
    assert GenerationConfig().do_sample is False  # greedy: reproducible answers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 30, "num_heads": 8}, r"width \(30\) must be divisible by num_heads \(8\)"),
        (
            {"target_modules": ("mlp.down_proj", "mlp.down_proj")},
            r"target_modules has duplicates: \['mlp.down_proj', 'mlp.down_proj'\]",
        ),
        ({"target_modules": ("mlp.down_proj.",)}, "target module 'mlp.down_proj.' is not a dotted module name"),
        ({"target_modules": ("mlp down",)}, "target module 'mlp down' is not a dotted module name"),
        ({"target_modules": ()}, "target_modules\n  Tuple should have at least 1 item"),
        ({"rank": 0}, "rank\n  Input should be greater than 0"),
        ({"rank": 257}, "rank\n  Input should be less than or equal to 256"),
        ({"num_heads": 0}, "num_heads\n  Input should be greater than 0"),
        ({"chunk_tokens": -1}, "chunk_tokens\n  Input should be greater than 0"),
        ({"bias_rank": -1}, "bias_rank\n  Input should be greater than or equal to 0"),
        ({"lora_scale": 0}, "lora_scale\n  Input should be greater than 0"),
        ({"ranks": 8}, "ranks\n  Extra inputs are not permitted"),
    ],
)
def test_bad_hypernet_configs_are_rejected_readably(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        HypernetConfig(**kwargs)


def test_hypernet_config_is_frozen_and_round_trips_as_json():
    config = HypernetConfig(rank=4, width=32, num_heads=4, target_modules=("mlp.down_proj", "self_attn.o_proj"))
    with pytest.raises(ValidationError, match="Instance is frozen"):
        config.rank = 5
    assert HypernetConfig.model_validate_json(config.model_dump_json()) == config


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (RuntimeConfig, {"dtype": "float8"}, "dtype\n  Input should be 'float32', 'bfloat16' or 'float16'"),
        (RuntimeConfig, {"encode_batch_chunks": 0}, "encode_batch_chunks\n  Input should be greater than 0"),
        (GenerationConfig, {"max_new_tokens": 0}, "max_new_tokens\n  Input should be greater than 0"),
        (GenerationConfig, {"top_p": 1.5}, "top_p\n  Input should be less than or equal to 1"),
        (GenerationConfig, {"temperature": 0}, "temperature\n  Input should be greater than 0"),
        (GenerationConfig, {"num_beams": 0}, "num_beams\n  Input should be greater than or equal to 1"),
        (GenerationConfig, {"num_beams": 17}, "num_beams\n  Input should be less than or equal to 16"),
        (GenerationConfig, {"max_tokens": 5}, "max_tokens\n  Extra inputs are not permitted"),
    ],
)
def test_bad_runtime_and_generation_configs_are_rejected(cls, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        cls(**kwargs)
