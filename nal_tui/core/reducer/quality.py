"""Quality over time: every validation metric of every set as a series against step, each
series' current / min / max / best (with their steps), and the over-training spans.

Fed by ``ValidationLog`` with each ``val`` record; cut by a branch like the rest of the live
view. Points are kept in compact arrays (a validation every 1,000 steps of a 1M-step run is
1,000 points per series).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nal_tui.core.feed.blocks import as_float
from nal_tui.core.text import clean
from trainer.events.schema import METRIC_HIGHER_IS_BETTER, VAL_SET

MAX_SERIES = 64  # (set, metric) pairs kept: a hostile log cannot grow this without end
MAX_POINTS = 200_000  # per series
ORDER = ("mel_l1", "mstft", "pesq", "stoi", "composite")  # known metrics first, then by name


@dataclass(frozen=True)
class SeriesStats:
    """A series at a glance: the last value, the extremes and the best, with their steps."""

    current: float | None
    current_step: int | None
    min: float | None
    min_step: int | None
    max: float | None
    max_step: int | None
    higher_is_better: bool = False

    @property
    def best(self) -> float | None:
        return self.max if self.higher_is_better else self.min

    @property
    def best_step(self) -> int | None:
        return self.max_step if self.higher_is_better else self.min_step


def series_stats(
    steps: Sequence[int], values: Sequence[float], higher_is_better: bool = False
) -> SeriesStats:
    """Stats over the finite values (NaN and inf never win min/max; the current value is
    the last one, whatever it is)."""
    lo = hi = None
    lo_s = hi_s = None
    for s, v in zip(steps, values, strict=False):
        if not math.isfinite(v):
            continue
        if lo is None or v < lo:
            lo, lo_s = v, s
        if hi is None or v > hi:
            hi, hi_s = v, s
    cur = values[-1] if len(values) else None
    cur_s = steps[-1] if len(steps) else None
    return SeriesStats(cur, cur_s, lo, lo_s, hi, hi_s, higher_is_better)


def higher_is_better(metric: str) -> bool:
    return METRIC_HIGHER_IS_BETTER.get(metric, False)


class QualityHistory:
    """Every (set, metric) series of the ``val`` records, in log order."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], tuple[array, array]] = {}
        self.version = 0

    def add(self, rec: dict[str, Any]) -> None:
        step = rec["step"]
        group = clean(rec.get("set") or VAL_SET, 20) or VAL_SET
        values = rec.get("metrics") or rec.get("losses") or {}
        for k, v in list(values.items())[:MAX_SERIES]:
            key = (group, clean(k, 40))
            pts = self.series.get(key)
            if pts is None:
                if len(self.series) >= MAX_SERIES:
                    continue
                pts = self.series[key] = (array("q"), array("d"))
            steps, vals = pts
            if steps and steps[-1] == step:  # the same validation again: the newest wins
                vals[-1] = as_float(v)
            elif len(steps) < MAX_POINTS:
                steps.append(step)
                vals.append(as_float(v))
        self.version += 1

    def truncate(self, after: int) -> None:
        """Forget the points after step ``after`` (an abandoned branch)."""
        for steps, vals in self.series.values():
            n = len(steps)
            while n and steps[n - 1] > after:
                n -= 1
            del steps[n:]
            del vals[n:]
        self.version += 1

    def metrics(self) -> list[str]:
        """Every metric any set reported: the known ones in their order, then by name."""
        names = {m for _, m in self.series}
        return [m for m in ORDER if m in names] + sorted(names - set(ORDER))

    def sets(self, metric: str) -> list[str]:
        """The sets that reported ``metric``, the validation set first."""
        return sorted((s for s, m in self.series if m == metric), key=lambda s: (s != VAL_SET, s))

    def points(self, set_name: str, metric: str) -> tuple[Sequence[int], Sequence[float]]:
        return self.series.get((set_name, metric), ((), ()))

    def stats(self, set_name: str, metric: str) -> SeriesStats:
        steps, vals = self.points(set_name, metric)
        return series_stats(steps, vals, higher_is_better(metric))


def overtraining_spans(
    alert_steps: Iterable[int], steps: Sequence[int], values: Sequence[float], higher: bool
) -> list[tuple[int, int]]:
    """(from, to) step spans to shade: from the best validation before each over-training
    alert to the alert (overlapping spans merged)."""
    spans: list[tuple[int, int]] = []
    for a in sorted(set(alert_steps)):
        n = 0
        while n < len(steps) and steps[n] <= a:
            n += 1
        st = series_stats(steps[:n], values[:n], higher)
        start = st.best_step if st.best_step is not None else a
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], a))
        else:
            spans.append((start, a))
    return spans
