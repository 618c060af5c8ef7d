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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

__all__ = ["PeakMemory", "Timed", "median_peak_bytes", "rss_bytes", "timed_interleaved", "timed_runs"]


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
    """Median wall time of `runs` calls of `fn` after `warmup` untimed ones; optionally the median peak memory,
    taken in `runs` further calls: on CPU the memory sampler is a thread that competes with `fn` for the cores, so
    the timed calls run without it."""
    (timed,) = timed_interleaved([fn], runs, device, warmup)
    return replace(timed, peak_bytes=median_peak_bytes(fn, runs, device)) if memory else timed


def median_peak_bytes(fn: Callable[[], Any], runs: int, device: torch.device) -> int:
    """Median over `runs` calls of the memory one call of `fn` adds at its peak (`PeakMemory`)."""
    peaks = []
    for _ in range(runs):
        _sync(device)
        with PeakMemory(device) as peak:
            fn()
            _sync(device)
        peaks.append(peak.bytes)
    return int(statistics.median(peaks))


def timed_interleaved(
    fns: Sequence[Callable[[], Any]], runs: int, device: torch.device, warmup: int = 1
) -> list[Timed]:
    """Median wall times of several functions called in turn, round after round (no memory sampling): load that
    drifts on a shared host during the measurement slows each of them alike, so ratios between them hold."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if not fns:
        raise ValueError("timed_interleaved needs at least one function")
    results: list[Any] = [None] * len(fns)
    for _ in range(warmup):
        results = [fn() for fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            _sync(device)
            start = time.perf_counter()
            results[i] = fn()
            _sync(device)
            times[i].append(time.perf_counter() - start)
    return [Timed(statistics.median(t), tuple(t), None, r) for t, r in zip(times, results, strict=True)]
