"""Progress: step and target, rates from recent step intervals, ETA, milestones reached."""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence

DEFAULT_MILESTONE_EVERY = 10_000
MAX_MILESTONES_PER_JUMP = 64  # an absurd jump in steps marks only the newest ones
# A silence of STALL_FACTOR x the usual (median) event interval, and at least STALL_MIN_S, is
# a stall: the stall alert fires on it, and the rate leaves such an interval out (it is not
# the machine's pace; the alert says what happened).
STALL_FACTOR = 20.0
STALL_MIN_S = 60.0
# A trainer writes no event while it starts (loading torch, checking the corpus, building the
# models): that silence is a stall only past this long, not by the step interval.
STARTUP_STALL_S = 600.0
START_CLOCK_SLACK_S = 1.0  # a run_start this much older than the PID file is a previous one
RATE_CHUNKS = 4  # the rate window is cut in this many stretches to see how steady it is
NOISY_SPREAD = 0.25  # stretches' rates this far apart (relative): the ETA shows a range
PAUSE_VAL, PAUSE_CKPT = "val", "checkpoint"


def stall_limit(
    usual: float | None,
    last_pause_s: float = 0.0,
    factor: float = STALL_FACTOR,
    min_s: float = STALL_MIN_S,
) -> float | None:
    """How long a silence may last before it is a stall (None: no usual interval yet)."""
    if usual is None:
        return None
    return max(factor * usual, min_s, 3.0 * last_pause_s)


def median(xs: Iterable[float]) -> float | None:
    fin = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(fin) if fin else None


class Progress:
    """Step, target, epoch and rates. The rate is time-weighted (steps / seconds) over the
    last ``rate_window`` step intervals; intervals across a pause (validation, checkpoint,
    restart) and stalls are left out, and the ETA adds the pauses still to come."""

    def __init__(
        self,
        rate_window: int = 100,
        milestone_every: int | None = None,
        stall: tuple[float, float] = (STALL_FACTOR, STALL_MIN_S),
    ) -> None:
        self.stall = stall  # (factor, min_s): what the stall alert calls a stall
        self.step: int | None = None
        self.max_step: int | None = None
        self.target_step: int | None = None
        self.epoch: int | None = None
        self.checkpoint_every = 0
        self.val_every = 0
        self.milestone_opt = milestone_every
        self.milestone_run = 0
        self.step_dt: deque[float] = deque(maxlen=rate_window)
        self.event_dt: deque[float] = deque(maxlen=rate_window)
        self.samples_s: deque[float] = deque(maxlen=20)
        self.step_time: deque[float] = deque(maxlen=20)
        self.intervals: deque[tuple[int, float]] = deque(maxlen=rate_window)  # (steps, s)
        self._fed = 0  # intervals appended so far: with step_time, what rates() depends on
        self._rates: tuple[tuple, tuple[float, float, float] | None] | None = None
        self.pause_s: dict[str, float] = {PAUSE_VAL: 0.0, PAUSE_CKPT: 0.0}  # the newest each
        self.ref: tuple[int, float] | None = None  # last step row; None after a pause
        self.last_pause_s = 0.0
        self.reached: dict[int, float] = {}
        self.names: dict[int, str] = {}

    # ---- inputs

    def pause(self, duration: float = 0.0, kind: str | None = None) -> None:
        """A pause in stepping (``kind``: PAUSE_VAL or PAUSE_CKPT, whose cost the ETA adds
        for each one to come)."""
        self.ref = None
        if duration:
            self.last_pause_s = max(self.last_pause_s * 0.5, duration)
            if kind in self.pause_s and math.isfinite(duration) and duration > 0:
                self.pause_s[kind] = duration

    def rows(self, steps: Sequence[int], ts: Sequence[float], rising: bool) -> None:
        """Step rows in log order: position, milestones, rate intervals."""
        ref = self.ref
        self.step = steps[-1]
        self.ref = (steps[-1], ts[-1])
        self.reach(steps, ts, rising)
        top = steps[-1] if rising else max(steps)
        self.max_step = top if self.max_step is None else max(self.max_step, top)
        n = len(steps)
        lo = max(0, n - (self.step_dt.maxlen or 0))
        if lo == 0 and ref is not None:
            self._interval(ref[0], ref[1], steps[0], ts[0])
        for i in range(max(lo, 1), n):
            self._interval(steps[i - 1], ts[i - 1], steps[i], ts[i])

    def truncate(self, step: int) -> None:
        """Back at ``step``: the steps after it (an abandoned branch) are forgotten, and so
        are the milestones reached there. Rates stay: they measure the machine."""
        self.step = step
        if self.max_step is not None and self.max_step > step:
            self.max_step = step
        self.reached = {s: t for s, t in self.reached.items() if s <= step}
        self.names = {s: n for s, n in self.names.items() if s <= step}
        self.ref = None

    def summary(self, first: int, last: int, t_first: float, t_last: float) -> None:
        """A pre-aggregated stretch of rows (no milestone inside; the caller checks)."""
        self.step = last
        self.max_step = last if self.max_step is None else max(self.max_step, last)
        self.ref = (last, t_last)

    def _interval(self, s0: int, t0: float, s1: int, t1: float) -> None:
        ds, dt = s1 - s0, t1 - t0
        if ds > 0 and dt >= 0:
            self.step_dt.append(dt / ds)
            self.event_dt.append(dt)
            self.intervals.append((ds, dt))
            self._fed += 1

    # ---- milestones

    @property
    def milestone_every(self) -> int:
        if self.milestone_opt is not None:
            return self.milestone_opt
        return self.milestone_run or DEFAULT_MILESTONE_EVERY

    def milestone_between(self, lo: int, hi: int) -> bool:
        """Whether a milestone (or the target) lies in ``(lo, hi]``."""
        every = self.milestone_every
        if every > 0 and hi // every > lo // every:
            return True
        return bool(self.target_step and lo < self.target_step <= hi)

    def reach(self, steps: Sequence[int], ts: Sequence[float], rising: bool) -> None:
        every = self.milestone_every
        prev = self.max_step or 0
        top = steps[-1] if rising else max(steps)
        wanted: list[int] = []
        if every > 0 and top >= every and top // every > prev // every:
            first = max(prev // every + 1, top // every - MAX_MILESTONES_PER_JUMP + 1)
            wanted = [k * every for k in range(first, top // every + 1)]
        if self.target_step and prev < self.target_step <= top:
            wanted.append(self.target_step)
        j = 0
        for m in sorted(set(wanted)):
            if m in self.reached:
                continue
            if rising:
                j = bisect_left(steps, m, j)
            else:
                while j < len(steps) and steps[j] < m:
                    j += 1
            if j < len(steps):
                self.reached[m] = float(ts[j])

    def milestone_rows(self, keep: int = 5) -> tuple[list[tuple[int, float | None, str]], int]:
        """The last ``keep`` reached milestones and the next one, and how many more follow."""
        every = self.milestone_every
        top = self.target_step or self.max_step or 0
        reached = sorted(self.reached)[-keep:]
        rows: list[tuple[int, float | None, str]] = [
            (s, self.reached[s], self.names.get(s, "")) for s in reached
        ]
        cur = self.max_step or 0
        nxt = None
        if every > 0:
            nxt = (cur // every + 1) * every
        if self.target_step and (nxt is None or nxt > self.target_step):
            nxt = self.target_step if self.target_step > cur else None
        pending = 0
        if nxt is not None and nxt not in self.reached:
            rows.append((nxt, None, self.names.get(nxt, "")))
            if every > 0 and top > nxt:
                pending = (top - nxt) // every + (1 if self.target_step and top % every else 0)
        return rows, pending

    # ---- rates

    def rates(self) -> tuple[float, float, float] | None:
        """(steps/s, slowest, fastest stretch's steps/s) over the recent window: steps
        done / seconds taken, stalls left out; the trainer's own step time when the log has
        no intervals yet. None when nothing is known. Kept until an input changes: a
        redraw asks for it several times."""
        key = (self._fed, tuple(self.step_time), self.stall)
        if self._rates is None or self._rates[0] != key:
            self._rates = (key, self._compute_rates())
        return self._rates[1]

    def _compute_rates(self) -> tuple[float, float, float] | None:
        limit = stall_limit(self.usual_interval, 0.0, *self.stall)
        iv = [(ds, dt) for ds, dt in self.intervals if limit is None or dt <= limit]
        secs = sum(dt for _, dt in iv)
        if secs <= 0:
            m = median(self.step_time)
            return (1.0 / m,) * 3 if m is not None and m > 0 else None
        rate = sum(ds for ds, _ in iv) / secs
        lo = hi = rate
        if len(iv) >= 2 * RATE_CHUNKS:
            n = len(iv)
            parts = [
                iv[i * n // RATE_CHUNKS : (i + 1) * n // RATE_CHUNKS] for i in range(RATE_CHUNKS)
            ]
            each = [sum(ds for ds, _ in c) / t for c in parts if (t := sum(dt for _, dt in c)) > 0]
            lo, hi = min(each + [rate]), max(each + [rate])
        return rate, lo, hi

    @property
    def steps_per_s(self) -> float | None:
        r = self.rates()
        return r[0] if r else None

    @property
    def seconds_per_step(self) -> float | None:
        sps = self.steps_per_s
        return 1.0 / sps if sps else None

    @property
    def usual_interval(self) -> float | None:
        return median(self.event_dt)

    @property
    def fraction(self) -> float:
        if not self.target_step or self.step is None:
            return 0.0
        return min(1.0, max(0.0, self.step / self.target_step))

    def pauses_until(self, step: int) -> float:
        """Seconds of validation and checkpoint pauses from now up to ``step``, at their
        newest measured cost."""
        now = self.step or 0
        total = 0.0
        for every, kind in ((self.val_every, PAUSE_VAL), (self.checkpoint_every, PAUSE_CKPT)):
            if every > 0 and step > now:
                total += (step // every - now // every) * self.pause_s[kind]
        return total

    def eta_s(self) -> float | None:
        """Seconds to the target: the steps left at the recent rate plus the pauses ahead."""
        if self.step is None or not self.target_step:
            return None
        if self.step >= self.target_step:
            return 0.0
        sps = self.steps_per_s
        if sps is None:
            return None
        return (self.target_step - self.step) / sps + self.pauses_until(self.target_step)

    def eta_range_s(self) -> tuple[float, float] | None:
        """(soonest, latest) ETA when the rate is noisy (its stretches differ by more than
        NOISY_SPREAD); None when it is steady or unknown."""
        r = self.rates()
        if r is None or self.step is None or not self.target_step or self.step >= self.target_step:
            return None
        rate, lo, hi = r
        if lo <= 0 or (hi - lo) / rate < NOISY_SPREAD:
            return None
        left, pauses = self.target_step - self.step, self.pauses_until(self.target_step)
        return left / hi + pauses, left / lo + pauses

    def next_checkpoint(self) -> tuple[int | None, float | None]:
        if self.step is None or self.checkpoint_every <= 0:
            return None, None
        nxt = (self.step // self.checkpoint_every + 1) * self.checkpoint_every
        if self.target_step:
            if self.step >= self.target_step:
                return None, None
            nxt = min(nxt, self.target_step)
        sps = self.seconds_per_step
        return nxt, None if sps is None else (nxt - self.step) * sps

    def next_milestone_eta(self) -> float | None:
        rows, _ = self.milestone_rows(0)
        sps = self.seconds_per_step
        if not rows or sps is None or self.step is None:
            return None
        return max(0.0, (rows[-1][0] - self.step) * sps)
