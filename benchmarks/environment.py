"""What the numbers were measured on: machine, library versions, device, model and checkpoint ids."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from datetime import UTC, datetime
from typing import Any

import torch

from d2l_rag.model.precision import describe_precision

__all__ = ["environment"]

_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "safetensors",
    "accelerate",
    "sentence-transformers",
    "bm25s",
    "matplotlib",
    "d2l-rag",
)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "hypernet_precision": describe_precision(device),
        "git_commit": _git_commit(),
        "versions": {name: _version(name) for name in _PACKAGES},
    }
    try:
        import psutil

        env["memory_bytes"] = int(psutil.virtual_memory().total)
    except ImportError:
        env["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return env
