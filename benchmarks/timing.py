"""Timing and peak memory: medians of repeated runs, and the peak a call adds on top of what was already held.

On CUDA the peak is `torch.cuda.max_memory_allocated` (exact, tensors only). On CPU `tracemalloc` does not see
torch's allocator, so a thread samples the process's resident set size every few milliseconds and the peak minus
the RSS before the call is reported: coarse (allocator caching, page granularity) but what the user pays for.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PeakMemory", "Timed", "rss_bytes", "timed_runs"]


@dataclass(frozen=True)
class Timed:
    median_s: float
    runs_s: tuple[float, ...]
    peak_bytes: int | None  # extra memory at the peak of one run (median over runs)
    result: Any  # what the last run returned


def rss_bytes() -> int:
    """Resident set size of this process (psutil when installed, else /proc/self/statm)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """`with PeakMemory(device) as peak: ...` then `peak.bytes`: the most memory the block added."""

    def __init__(self, device: torch.device, interval_s: float = 0.002) -> None:
        self.device, self.interval_s = device, interval_s
        self.bytes = 0
        self._stop = threading.Event()
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._before = self._peak = rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = max(0, torch.cuda.max_memory_allocated(self.device) - self._before)
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, rss_bytes())
            self.bytes = max(0, self._peak - self._before)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_runs(fn: Callable[[], Any], runs: int, device: torch.device, warmup: int = 1, memory: bool = False) -> Timed:
    """Median wall time of `runs` calls of `fn` after `warmup` untimed ones; optionally the median peak memory."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    result = None
    for _ in range(warmup):
        result = fn()
    times, peaks = [], []
    for _ in range(runs):
        _sync(device)
        if memory:
            with PeakMemory(device) as peak:
                start = time.perf_counter()
                result = fn()
                _sync(device)
                times.append(time.perf_counter() - start)
            peaks.append(peak.bytes)
        else:
            start = time.perf_counter()
            result = fn()
            _sync(device)
            times.append(time.perf_counter() - start)
    return Timed(statistics.median(times), tuple(times), int(statistics.median(peaks)) if peaks else None, result)
