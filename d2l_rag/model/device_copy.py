"""Host tensors to the accelerator without making the host wait for it.

A plain `.to("cuda")` from ordinary (pageable) memory synchronizes: the host waits for every kernel queued so far
before it can go on building the step, and the GPU then idles while it does. R4's step profile spent 0.11 s a step in
`cudaStreamSynchronize` that way. Copied from pinned memory with `non_blocking=True`, the copy is queued behind those
kernels and the host goes on; torch's pinned allocator keeps the buffer until the copy has run.
"""

from __future__ import annotations

import torch

__all__ = ["to_device"]


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`tensor` (on the CPU) on `device`: queued behind the device's work on CUDA, a plain copy elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
