"""One loss: its latest value, moving average and trend over a window, whole-run series.

A *lazy* track (the optimiser's series: learning rates and gradient norms) keeps what its
series is fed as a list of pending operations until the series is first asked for, so
opening a long run costs nothing for a series nobody looks at; ``build_pending`` replays a
snapshot of them on another thread and ``install`` puts the result in place (the same
series an eager track would hold: the operations are replayed in order).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from nal_tui.core.reducer.series import MinMaxSeries

# Pending operations a lazy track keeps at most; past that it builds its series (the cost
# an eager track pays anyway), so a series never shown holds bounded memory in a long watch.
PENDING_MAX = 8192

_POINTS, _BUCKET, _TRUNCATE = 0, 1, 2
Op = tuple


def _replay(series: MinMaxSeries, ops: Sequence[Op]) -> None:
    for op in ops:
        if op[0] == _POINTS:
            series.extend(op[1], op[2], rising=op[3])
        elif op[0] == _BUCKET:
            series.add_bucket(*op[1:])
        else:
            series.truncate(op[1])


def build_pending(ops: Sequence[Op]) -> MinMaxSeries:
    """A fresh series from a snapshot of a lazy track's pending operations (any thread)."""
    series = MinMaxSeries()
    _replay(series, ops)
    return series


class LossTrack:
    def __init__(
        self, key: str, window: int = 100, trend_threshold_pct: float = 1.0, lazy: bool = False
    ) -> None:
        self.key = key
        self._series = MinMaxSeries()
        # None once the series is built (or never lazy); else what it is still to be fed.
        self._pending: list[Op] | None = [] if lazy else None
        self.window: deque[float] = deque(maxlen=window)
        self.window_steps: deque[int] = deque(maxlen=window)  # the step of each value
        self.trend_threshold_pct = trend_threshold_pct

    @property
    def series(self) -> MinMaxSeries:
        """The whole-run series (a lazy track builds it now, on first use)."""
        if self._pending is not None:
            self.install(build_pending(self._pending), len(self._pending))
        return self._series

    @property
    def ready(self) -> bool:
        """Whether ``series`` is built (asking for it costs nothing more)."""
        return self._pending is None

    def pending(self) -> list[Op]:
        """A snapshot of the pending operations, for ``build_pending`` on another thread."""
        return [] if self._pending is None else list(self._pending)

    def install(self, series: MinMaxSeries, used: int) -> None:
        """Put in place a series built from the first ``used`` pending operations; those
        added since are replayed on it. The track is eager from then on."""
        if self._pending is None:
            return  # built meanwhile (asked for directly): the same series
        _replay(series, self._pending[used:])
        self._series, self._pending = series, None

    def extend(self, steps: Sequence[int], values: Sequence[float], rising: bool) -> None:
        """Logged points into the series."""
        if self._pending is None:
            self._series.extend(steps, values, rising=rising)
        else:
            self._defer((_POINTS, steps, values, rising))

    def add_bucket(self, x0: int, x1: int, lo: float, hi: float, bad: bool, n: int) -> None:
        """A block's summary into the series (``MinMaxSeries.add_bucket``)."""
        if self._pending is None:
            self._series.add_bucket(x0, x1, lo, hi, bad, n)
        else:
            self._defer((_BUCKET, x0, x1, lo, hi, bad, n))

    def _defer(self, op: Op) -> None:
        self._pending.append(op)  # type: ignore[union-attr]
        if len(self._pending) > PENDING_MAX:  # type: ignore[arg-type]
            self.series  # noqa: B018 - builds it

    def add_window(self, steps: Sequence[int], values: Sequence[float]) -> None:
        """The newest logged values (and their steps) into the averaging window."""
        n = self.window.maxlen or 0
        self.window.extend(values[-n:])
        self.window_steps.extend(steps[-n:])

    def clear_window(self) -> None:
        """The window no longer holds the newest values (a block applied from its summary)."""
        self.window.clear()
        self.window_steps.clear()

    def truncate(self, after: int) -> None:
        """Forget every value logged after step ``after`` (an abandoned branch)."""
        if self._pending is None:
            self._series.truncate(after)
        else:
            self._defer((_TRUNCATE, after))
        while self.window_steps and self.window_steps[-1] > after:
            self.window_steps.pop()
            self.window.pop()

    @property
    def current(self) -> float | None:
        return self.window[-1] if self.window else None

    @property
    def moving_avg(self) -> float | None:
        """Mean of the finite values among the last ``window`` logged values."""
        w = self.window
        if not w:
            return None
        s = sum(w)
        if s - s == 0.0:
            return s / len(w)
        fin = [v for v in w if math.isfinite(v)]
        return math.fsum(fin) / len(fin) if fin else None

    @property
    def trend_pct(self) -> float | None:
        """Percent change of the newer half of the window's mean over the older half's."""
        vals = list(self.window)
        half = len(vals) // 2
        old = [v for v in vals[: len(vals) - half] if math.isfinite(v)]
        new = [v for v in vals[len(vals) - half :] if math.isfinite(v)]
        if half < 2 or not old or not new:
            return None
        m_old = math.fsum(old) / len(old)
        if m_old == 0:
            return None
        return (math.fsum(new) / len(new) - m_old) / abs(m_old) * 100.0

    @property
    def trend_dir(self) -> int:
        """+1 rising, -1 falling, 0 flat (within ``trend_threshold_pct``) or unknown."""
        p = self.trend_pct
        if p is None or abs(p) < self.trend_threshold_pct:
            return 0
        return 1 if p > 0 else -1
