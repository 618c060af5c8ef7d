"""Timing helpers: interleaved calls, and memory sampled in calls of its own, never in the timed ones."""

from __future__ import annotations

import mmap
import threading
import time

import pytest
import torch

from benchmarks.timing import median_peak_bytes, timed_interleaved, timed_runs

CPU = torch.device("cpu")


def test_interleaved_calls_alternate_and_return_each_functions_last_result():
    calls: list[str] = []

    def first() -> str:
        calls.append("a")
        return f"a{len(calls)}"

    def second() -> str:
        calls.append("b")
        return f"b{len(calls)}"

    a, b = timed_interleaved([first, second], runs=3, device=CPU, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds
    assert (a.result, b.result) == ("a7", "b8")
    assert len(a.runs_s) == len(b.runs_s) == 3 and a.peak_bytes is None


def test_timed_calls_run_without_the_memory_sampler():
    threads: list[int] = []
    timed = timed_runs(lambda: threads.append(threading.active_count()), runs=2, device=CPU, warmup=0, memory=True)
    assert isinstance(timed.peak_bytes, int) and timed.peak_bytes >= 0
    # two timed calls alone, then two under the sampler's thread
    assert threads[0] == threads[1] and threads[2] == threads[3] == threads[0] + 1


def test_peak_of_a_call_that_holds_memory_is_seen():
    def hold_64_mib() -> None:
        # a fresh mapping, written so it is resident: memory the allocator freed earlier in the process cannot serve it
        with mmap.mmap(-1, 64 * 2**20) as block:
            block.write(b"x" * len(block))
            time.sleep(0.05)  # many sampling intervals

    assert median_peak_bytes(hold_64_mib, runs=1, device=CPU) > 32 * 2**20


@pytest.mark.parametrize("runs", [0, -1])
def test_runs_must_be_positive(runs):
    with pytest.raises(ValueError, match="runs must be >= 1"):
        timed_interleaved([lambda: None], runs=runs, device=CPU)


def test_no_functions_is_an_error():
    with pytest.raises(ValueError, match="at least one function"):
        timed_interleaved([], runs=1, device=CPU)
