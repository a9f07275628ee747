"""When each step of the live branch was logged: the x axis of a chart against wall-clock
time. Kept compact (a knot every ``stride`` rows, at most ``cap`` of them, thinned by halves
as a run grows, so a 500k-step run holds a few thousand), truncated with the branch rule like every other series, and
read by linear interpolation between knots."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence

from nal_tui.core.reducer.series import is_rising

DEFAULT_CAP = 4096


class StepClock:
    """(step, time) knots of the live branch, steps strictly rising."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = max(4, cap)
        self.steps = array("q")
        self.ts = array("d")
        self.stride = 1  # steps between knots (doubles whenever the cap is reached)
        self._last: tuple[int, float] | None = None  # the newest row, kept exactly
        self._since = 0  # rows logged after the newest knot

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, steps: Sequence[int], ts: Sequence[float], rising: bool | None = None) -> None:
        """Rows as logged (``rising``: whether ``steps`` strictly increase, when the caller
        knows); a step not past the newest (a repeat, a step backwards) is skipped: a
        branch arrives through ``truncate`` first."""
        last = self._last
        if rising is None:
            rising = is_rising(steps)
        if steps and (last is None or steps[0] > last[0]) and rising:
            self._rising(steps, ts)  # the usual batch: slices, no loop per row
            return
        for s, t in zip(steps, ts, strict=True):
            if self._last is None or s > self._last[0]:
                self._rising((s,), (t,))

    def _rising(self, steps: Sequence[int], ts: Sequence[float]) -> None:
        """A knot every ``stride`` rows, counted on from the last knot."""
        n = len(steps)
        first = 0 if not self.steps else max(0, self.stride - self._since - 1)
        if first < n:
            self.steps.extend(steps[first :: self.stride])
            self.ts.extend(ts[first :: self.stride])
            self._since = (n - 1 - first) % self.stride
            while len(self.steps) >= self.cap:
                self._thin()
        else:
            self._since += n
        self._last = (steps[-1], ts[-1])

    def _thin(self) -> None:
        """Every other knot, the first and the newest kept (so the row count since the
        newest stays right)."""
        keep = (len(self.steps) - 1) % 2
        self.steps = self.steps[:keep] + self.steps[keep::2]
        self.ts = self.ts[:keep] + self.ts[keep::2]
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
        self._since = 0

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
