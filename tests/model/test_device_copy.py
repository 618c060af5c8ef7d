"""to_device: the same values on the device asked for; off CUDA a plain copy (no pinning, which needs a GPU)."""

from __future__ import annotations

import pytest
import torch

from d2l_rag.model.device_copy import to_device


def test_a_cpu_copy_keeps_values_and_dtype() -> None:
    t = torch.arange(6, dtype=torch.long).view(2, 3)
    moved = to_device(t, "cpu")
    assert moved.device.type == "cpu" and moved.dtype == torch.long and torch.equal(moved, t)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_cuda_copy_arrives_whole_once_the_stream_has_run() -> None:
    t = torch.randn(64, 1024)
    moved = to_device(t, torch.device("cuda"))
    assert moved.is_cuda and torch.equal(moved.cpu(), t)  # .cpu() waits for the queued copy
