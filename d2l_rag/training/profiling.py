"""Where a training step's time goes, written down by the run itself (`profile_at`).

A GPU lease is too short to spend on a separate profiling run, and the steps of a run get faster as it goes on
(stage R: 1.2 -> 1.7 steps a second), which a benchmark of a few fresh steps cannot show. So the trainer profiles a
few of its own steps at the steps it is told, and writes a table per window next to its log.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ["StepProfiler"]


class StepProfiler:
    """Profiles `steps` steps from each step in `at` (counted as the trainer counts: the step about to run) and
    writes `profile_step{N}.txt` to `out_dir`: wall time a step, then the operators by their own time, on the GPU
    when there is one (kernels and runtime calls such as cudaMalloc or synchronisations show up by name)."""

    def __init__(self, out_dir: Path, at: list[int], steps: int) -> None:
        self.out_dir, self.at, self.steps = Path(out_dir), sorted(set(at)), steps
        self._prof: profile | None = None
        self._first = self._done = 0
        self._started = 0.0
        self._cuda = torch.cuda.is_available()

    def before_step(self, step: int) -> None:
        """Call before the step numbered `step` (0-based: the trainer's count of steps done) runs."""
        if self._prof is None and step in self.at:
            activities = [ProfilerActivity.CPU]
            if self._cuda:
                activities.append(ProfilerActivity.CUDA)
                torch.cuda.synchronize()
            self._prof = profile(activities=activities)
            self._prof.__enter__()
            self._first, self._done, self._started = step, 0, time.perf_counter()

    def after_step(self, step: int) -> None:
        """Call after a step, with the trainer's count of steps done; ends and writes a window once it is full."""
        if self._prof is not None:
            self._done = step - self._first
            if self._done >= self.steps:
                self.close()

    def close(self) -> None:
        """End an open window early (the run stopped inside it) and write what it holds."""
        if self._prof is None:
            return
        if self._cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - self._started
        prof, self._prof = self._prof, None
        prof.__exit__(None, None, None)
        averages = prof.key_averages()  # aggregating the events is the costly part: once, for both tables
        sort_by = "self_device_time_total" if self._cuda else "self_cpu_time_total"
        table = averages.table(sort_by=sort_by, row_limit=40, max_name_column_width=60)
        done = self._done
        header = (
            f"steps {self._first + 1} to {self._first + done} of this run: {wall / done:.3f} s a step\n"
            if done
            else f"step {self._first + 1} of this run did not finish ({wall:.3f} s profiled)\n"
        )
        text = header + f"\nby {sort_by}:\n{table}\n"
        if self._cuda:  # on CPU the table above is this one
            by_cpu = averages.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60)
            text += f"\nby self_cpu_time_total (the host's share: launches, copies, waits):\n{by_cpu}\n"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"profile_step{self._first}.txt").write_text(text)
