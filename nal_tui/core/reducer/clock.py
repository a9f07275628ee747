"""When each step of the live branch was logged: the x axis of a chart against wall-clock
time. Kept compact (at most ``cap`` knots, thinned by halves as a run grows, so a 500k-step
run holds a few thousand), truncated with the branch rule like every other series, and
read by linear interpolation between knots."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence

DEFAULT_CAP = 4096


class StepClock:
    """(step, time) knots of the live branch, steps strictly rising."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = max(4, cap)
        self.steps = array("q")
        self.ts = array("d")
        self.stride = 1  # steps between knots (doubles whenever the cap is reached)
        self._last: tuple[int, float] | None = None  # the newest row, kept exactly

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, steps: Sequence[int], ts: Sequence[float]) -> None:
        """Rows as logged; a step not past the newest (a repeat, a step backwards) is
        skipped: a branch arrives through ``truncate`` first."""
        for s, t in zip(steps, ts, strict=True):
            last = self._last
            if last is not None and s <= last[0]:
                continue
            if not self.steps or s - self.steps[-1] >= self.stride:
                self.steps.append(s)
                self.ts.append(t)
                if len(self.steps) >= self.cap:
                    self._thin()
            self._last = (s, t)

    def _thin(self) -> None:
        self.steps = self.steps[::2]
        self.ts = self.ts[::2]
        self.stride *= 2

    def truncate(self, keep: int) -> None:
        """Forget the steps after ``keep`` (they belong to an abandoned branch); ``keep``
        itself stays, interpolated where it fell between knots."""
        if self._last is None or self._last[0] <= keep:
            return
        at = self.times([keep])[0] if self.steps and self.steps[0] <= keep else None
        n = bisect_left(self.steps, keep + 1)
        del self.steps[n:]
        del self.ts[n:]
        if at is not None and self.steps[-1] != keep:
            self.steps.append(keep)
            self.ts.append(at)
        self._last = (self.steps[-1], self.ts[-1]) if self.steps else None

    def _knots(self) -> tuple[Sequence[int], Sequence[float]]:
        if self._last is not None and (not self.steps or self.steps[-1] != self._last[0]):
            return [*self.steps, self._last[0]], [*self.ts, self._last[1]]
        return self.steps, self.ts

    def times(self, steps: Sequence[int]) -> list[float] | None:
        """The time each of ``steps`` was logged (interpolated between knots, held at the
        ends); None before any row."""
        xs, ys = self._knots()
        if not xs:
            return None
        out = []
        for s in steps:
            i = bisect_left(xs, s)
            if i <= 0:
                out.append(ys[0])
            elif i >= len(xs):
                out.append(ys[-1])
            else:
                x0, x1 = xs[i - 1], xs[i]
                out.append(ys[i - 1] + (ys[i] - ys[i - 1]) * (s - x0) / (x1 - x0))
        return out
