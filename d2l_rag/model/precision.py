"""The hypernetwork's precision at run time: bf16 autocast, the regime it was trained in, where the device
multiplies bf16 natively (CUDA; CPUs with AVX512-BF16 or AMX run its matmuls ~3x faster than fp32), else fp32.

Only the hypernetwork's own matmuls change; the base model keeps its dtype and the LoRAs it emits stay float32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal, get_args

import torch

from d2l_rag.config import HypernetPrecision

__all__ = ["describe_precision", "effective_precision", "fast_bf16", "hypernet_autocast"]


def fast_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 matmuls in hardware (on CPU without it, torch emulates them, slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a torch build without oneDNN
            return False
    return False


def effective_precision(device: torch.device, precision: HypernetPrecision = "auto") -> Literal["float32", "bfloat16"]:
    """What `precision` means on `device`: "auto" becomes bfloat16 where `fast_bf16`, else float32."""
    if precision not in get_args(HypernetPrecision):
        raise ValueError(f"hypernet precision must be one of {get_args(HypernetPrecision)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if fast_bf16(device) else "float32"
    return precision


def describe_precision(device: torch.device, precision: HypernetPrecision = "auto") -> str:
    """For reports: "bfloat16 autocast" or "float32"."""
    resolved = effective_precision(device, precision)
    return "bfloat16 autocast" if resolved == "bfloat16" else resolved


def hypernet_autocast(device: torch.device, precision: HypernetPrecision = "auto") -> AbstractContextManager:
    """The context to run the hypernetwork in: bf16 autocast or none (fp32)."""
    if effective_precision(device, precision) == "float32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
