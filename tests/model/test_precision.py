"""The hypernetwork's run-time precision: bf16 autocast changes its matmuls only, and its LoRAs stay float32."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from d2l_rag.adapters import AdapterBuilder
from d2l_rag.config import RuntimeConfig
from d2l_rag.model import LoadedHypernetwork
from d2l_rag.model.precision import fast_bf16, hypernet_autocast

TEXT = "The access code for the Tessary vault is KX-4821-Q. Mira Oden was born in Velport in 1931. " * 2


@pytest.fixture(scope="module")
def hypernet(tiny_lm, tiny_hypernet_config) -> LoadedHypernetwork:
    """Non-zero output scalers, so B carries what the precision changes."""
    loaded = LoadedHypernetwork.fresh(tiny_lm, tiny_hypernet_config)
    torch.manual_seed(3)
    with torch.no_grad():
        loaded.network.out_scale.normal_()
    return loaded


def _loras(tiny_lm, hypernet, precision):
    return AdapterBuilder(tiny_lm, hypernet, precision=precision).build(TEXT).weights["mlp.down_proj"]


def test_bfloat16_autocast_emits_float32_loras_close_to_the_float32_ones(tiny_lm, hypernet):
    a32, b32 = _loras(tiny_lm, hypernet, "float32")
    a16, b16 = _loras(tiny_lm, hypernet, "bfloat16")
    assert a16.dtype == b16.dtype == torch.float32
    for ref, got in ((a32, a16), (b32, b16)):
        assert not torch.equal(ref, got)  # the matmuls did run in bf16
        assert (got - ref).norm() / ref.norm() < 0.03


def test_auto_is_bfloat16_exactly_where_the_device_is_fast_at_it(tiny_lm, hypernet):
    expected = "bfloat16" if fast_bf16(tiny_lm.device) else "float32"
    for got, ref in zip(_loras(tiny_lm, hypernet, "auto"), _loras(tiny_lm, hypernet, expected), strict=True):
        assert torch.equal(got, ref)


def test_float32_runs_without_autocast():
    assert isinstance(hypernet_autocast(torch.device("cpu"), "float32"), nullcontext)
    assert isinstance(hypernet_autocast(torch.device("cpu"), "bfloat16"), torch.autocast)


def test_a_device_with_no_known_bf16_support_runs_float32():
    assert fast_bf16(torch.device("meta")) is False
    assert isinstance(hypernet_autocast(torch.device("meta"), "auto"), nullcontext)


def test_unknown_precision_is_refused_when_the_builder_is_made(tiny_lm, hypernet):
    with pytest.raises(ValueError, match=r"hypernet precision must be one of .*, got 'float16'"):
        AdapterBuilder(tiny_lm, hypernet, precision="float16")
    with pytest.raises(ValueError, match="hypernet_precision"):
        RuntimeConfig(hypernet_precision="float16")
