"""One loss: its latest value, moving average and trend over a window, whole-run series."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from nal_tui.core.reducer.series import MinMaxSeries


class LossTrack:
    def __init__(self, key: str, window: int = 100, trend_threshold_pct: float = 1.0) -> None:
        self.key = key
        self.series = MinMaxSeries()
        self.window: deque[float] = deque(maxlen=window)
        self.window_steps: deque[int] = deque(maxlen=window)  # the step of each value
        self.trend_threshold_pct = trend_threshold_pct

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
        self.series.truncate(after)
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
