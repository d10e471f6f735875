"""How many CPU threads a run should use on a machine it may share: the cores this process may run on,
and how many of them other processes are using right now.

On a 2-core machine two runs of 2 threads each do not share the cores, they fight over them:
torch's OpenMP threads spin while they wait for each other, and each run drops to a tenth of its
speed (measured: 11,400 samples/s alone, 880 each with two). One thread each keeps 60 % of the solo
speed per run. So ``trainer.threads=auto`` gives a run the cores no one else is using:

    threads = max(1, min(cores ÷ jobs, cores − round(others)))

``cores`` are those of the affinity mask (taskset, Slurm) capped by a cgroup CPU quota; ``jobs`` are
a joblib sweep's parallel jobs; ``others`` is the CPU time other processes used on those cores over
a window (e.g. while the data loaded), in cores, from ``/proc/stat`` minus this process's own
``/proc/self/stat``. :class:`CpuLoad` measures it; :func:`auto_threads` is the rule. Linux only;
elsewhere nothing is measured and auto keeps torch's default.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def affinity() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def quota() -> float | None:
    """The cgroup's CPU quota in cores (cgroup v2 cpu.max, or v1 cfs_quota_us / cfs_period_us), or None."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if text[0] == "max" else int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if q <= 0 else q / period
    except (OSError, ValueError):
        return None


def cores() -> int:
    """The cores this process may use: its affinity mask, capped by a CPU quota."""
    n = len(affinity())
    q = quota()
    return max(1, min(n, math.ceil(q))) if q is not None else n


class CpuLoad:
    """Cores used by *other* processes on this process's CPUs, between two looks (Linux /proc)."""

    def __init__(
        self, proc: Path = Path("/proc"), cpus: list[int] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.proc, self.cpus, self.clock = proc, set(affinity() if cpus is None else cpus), clock
        self.last = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        """(busy ticks of our CPUs, this process's ticks, wall time), or None where /proc is missing."""
        try:
            busy = 0
            with open(self.proc / "stat") as f:
                for line in f:
                    name, *fields = line.split()
                    if name.startswith("cpu") and name != "cpu" and int(name[3:]) in self.cpus:
                        values = [int(v) for v in fields[:8]]
                        busy += sum(values) - values[3] - values[4]  # all but idle and iowait
            with open(self.proc / "self" / "stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
            return busy, int(own[11]) + int(own[12]), self.clock()  # utime + stime (fields 14, 15)
        except (OSError, ValueError, IndexError):
            return None

    def others(self) -> tuple[float | None, float]:
        """(cores the other processes used since the last look, seconds since it); looks again."""
        now = self._sample()
        before, self.last = self.last, now
        if now is None or before is None or now[2] - before[2] <= 0:
            return None, 0.0
        seconds = now[2] - before[2]
        other_ticks = (now[0] - before[0]) - (now[1] - before[1])
        return max(0.0, other_ticks / TICKS / seconds), seconds


def auto_threads(available: int, jobs: int, others: float | None) -> tuple[int, str]:
    """The rule (see the module docstring) and the reason, for the header."""
    share = max(1, available // max(1, jobs))
    if others is None:
        return share, f"{available} core{'s' if available > 1 else ''}" + (f" ÷ {jobs} jobs" if jobs > 1 else "")
    free = available - round(others)
    n = max(1, min(share, free))
    busy = f"others use {others:.1f} of {available} cores"
    return n, busy + (f" ÷ {jobs} jobs" if jobs > 1 else "")
