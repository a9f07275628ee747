"""CPU threads: what ``train.threads`` resolves to, and which other processes keep the cores
busy (a trainer's threads then wait on theirs: two torch trainers on the same cores ran ~8x
slower than one).

Torch-free (psutil only): the trainer applies ``resolve_threads`` at start-up; preflight and
the dashboard's system panel warn with ``busy_processes`` / ``busy_warning``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

BUSY_MIN_PCT = 50.0  # of one core: a process using less is not "keeping a core busy"
BUSY_SAMPLE_S = 0.5


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity: taskset, cgroup cpusets)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads do not add matmul throughput)."""
    logical = os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    usable = usable_cpus()
    # Under a narrower affinity, assume the same threads-per-core ratio as the machine.
    return max(1, min(physical, round(usable * physical / logical)))


def resolve_threads(setting: int, local_ranks: int = 1) -> int:
    """Intra-op threads per process: ``setting`` when > 0, else the physical cores shared
    among the ranks on this machine (at least one each)."""
    if setting > 0:
        return setting
    return max(1, physical_cores() // max(1, local_ranks))


@dataclass(frozen=True)
class BusyProcess:
    pid: int
    name: str  # the process name, or the start of its command line
    cpu_pct: float  # of one core, over the sample


def _what(p: psutil.Process, name: str) -> str:
    """``python -m pytest``-like: the name says little for interpreters."""
    try:
        cmd = p.cmdline()
    except psutil.Error:
        cmd = []
    if not cmd:
        return name
    short = " ".join([os.path.basename(cmd[0]), *cmd[1:3]])
    return short if len(short) <= 60 else short[:59] + "…"


class BusyMeter:
    """CPU use of the other processes between two ``sample`` calls (no sleeping of its own:
    the dashboard's sampler calls it every few seconds, ``BUSY_EVERY_S``)."""

    def __init__(self, min_pct: float = BUSY_MIN_PCT) -> None:
        self.min_pct = min_pct
        self._last: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds
        self._t: float | None = None

    def sample(self, exclude: Iterable[int] = ()) -> list[BusyProcess]:
        """Processes that used at least ``min_pct`` % of a core since the last call,
        busiest first (none on the first call). Never counted: this process, its
        descendants, and ``exclude`` with theirs (e.g. the run's own trainer and ranks)."""
        skip = _family({os.getpid(), *exclude})
        now = time.monotonic()
        wall = None if self._t is None else max(now - self._t, 1e-6)
        cur: dict[tuple[int, float], float] = {}
        out = []
        for p in psutil.process_iter(["name", "cpu_times", "create_time"]):
            info = p.info
            t = info.get("cpu_times")
            if p.pid in skip or t is None or info.get("create_time") is None:
                continue
            key = (p.pid, info["create_time"])
            cur[key] = used = t.user + t.system
            if wall is not None and key in self._last:
                pct = 100.0 * (used - self._last[key]) / wall
                if pct >= self.min_pct:
                    out.append(BusyProcess(p.pid, _what(p, info.get("name") or "?"), pct))
        self._last, self._t = cur, now
        return sorted(out, key=lambda b: -b.cpu_pct)


def _family(pids: Iterable[int]) -> set[int]:
    out = set()
    for pid in pids:
        out.add(pid)
        try:
            out.update(c.pid for c in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            pass
    return out


def busy_processes(
    exclude: Iterable[int] = (),
    sample_s: float = BUSY_SAMPLE_S,
    min_pct: float = BUSY_MIN_PCT,
) -> list[BusyProcess]:
    """``BusyMeter`` over ``sample_s`` seconds from now (preflight's one look)."""
    meter = BusyMeter(min_pct)
    exclude = list(exclude)
    meter.sample(exclude)
    time.sleep(sample_s)
    return meter.sample(exclude)


def busy_warning(busy: list[BusyProcess], threads: int, cpus: int) -> str | None:
    """One line naming what keeps the cores busy and what it leaves the trainer; None when
    nothing does. ``cpus``: logical CPUs the trainer may use."""
    if not busy:
        return None
    taken = sum(b.cpu_pct for b in busy) / 100.0
    names = ", ".join(f"{b.name} (pid {b.pid}, {b.cpu_pct:.0f}% CPU)" for b in busy[:3])
    more = f" and {len(busy) - 3} more" if len(busy) > 3 else ""
    free = max(1, int(cpus - taken + 0.5))
    return (
        f"other processes keep {taken:.1f} of {cpus} CPUs busy: {names}{more}; "
        f"{threads} trainer thread(s) would compete with them "
        f"(--threads {free} or stopping them avoids it)"
    )
