"""Alerts: the log of alerts and one class per condition the dashboard detects itself.

Each detector sees the step rows as columns (``rows``); those that can also judge a
pre-aggregated stretch of rows from its summary (``summary``) say so, so the backlog
loader can skip the rows of a long, uneventful history.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from nal_tui.core.reducer.progress import STALL_FACTOR, STALL_MIN_S, stall_limit
from nal_tui.core.reducer.views import AlertRow
from nal_tui.core.vocab import LEVEL_ERROR, LEVEL_WARNING
from trainer.events.index import BLOCK_STEPS
from trainer.events.schema import (
    ALERT_BACKWARDS,
    ALERT_D_COLLAPSE,
    ALERT_GRAD_SPIKE,
    ALERT_IMBALANCE,
    ALERT_NONFINITE,
    ALERT_STALLED,
)

MAX_ALERTS = 1000

Cols = dict[str, Sequence[float]]


class AlertLog:
    """Alerts in time order, at most MAX_ALERTS (the oldest are dropped and counted)."""

    def __init__(self) -> None:
        self.rows: deque[AlertRow] = deque()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def total(self) -> int:
        return len(self.rows) + self.dropped

    def add(self, row: AlertRow) -> None:
        rows = self.rows
        if rows and row.t is not None and rows[-1].t is not None and row.t < rows[-1].t:
            # Detectors may report a little behind the trainer's own alerts: keep time order.
            items = list(rows)
            i = len(items)
            while i > 0 and items[i - 1].t is not None and items[i - 1].t > row.t:
                i -= 1
            items.insert(i, row)
            self.rows = deque(items)
        else:
            rows.append(row)
        while len(self.rows) > MAX_ALERTS:
            self.rows.popleft()
            self.dropped += 1

    def recent(self, n: int) -> list[AlertRow]:
        return list(self.rows)[-n:]


class NonfiniteDetector:
    """An alert when a loss turns NaN or infinite (once per stretch of non-finite rows)."""

    def __init__(self, alerts: AlertLog) -> None:
        self.alerts = alerts
        self.open = False

    def rows(self, steps: Sequence[int], ts: Sequence[float], cols: Cols, finite: bool) -> None:
        if finite and not self.open:
            return
        isfinite = math.isfinite
        keys = list(cols)
        for i in range(len(steps)):
            bad = [k for k in keys if not isfinite(cols[k][i])]
            if bad and not self.open:
                vals = ", ".join(f"{k}={cols[k][i]}" for k in bad)
                self.alerts.add(
                    AlertRow(
                        ALERT_NONFINITE,
                        LEVEL_ERROR,
                        steps[i],
                        f"non-finite loss at step {steps[i]}: {vals}",
                        ts[i],
                    )
                )
            self.open = bool(bad)

    def summary_ok(self, finite: bool) -> bool:
        return finite

    def summary(self) -> None:
        self.open = False


class CollapseDetector:
    """D collapse: ``window`` consecutive D values below ``threshold``."""

    def __init__(self, alerts: AlertLog, threshold: float = 0.01, window: int = 50) -> None:
        self.alerts, self.threshold, self.window = alerts, threshold, window
        self.run = 0
        self.open = False

    def rows(self, steps: Sequence[int], ts: Sequence[float], d: Sequence[float], finite: bool):
        thr = self.threshold
        if finite and min(d) >= thr:
            self.run, self.open = 0, False
            return
        for i, v in enumerate(d):
            if v < thr:  # NaN compares False: it breaks a run
                self.run += 1
                if self.run == self.window and not self.open:
                    self.open = True
                    self.alerts.add(
                        AlertRow(
                            ALERT_D_COLLAPSE,
                            LEVEL_WARNING,
                            steps[i],
                            f"D loss below {thr:g} for the last {self.window} logged values "
                            "(discriminator collapse?)",
                            ts[i],
                        )
                    )
            else:
                self.run, self.open = 0, False

    def summary_ok(self, d_min: float) -> bool:
        return d_min >= self.threshold

    def summary(self) -> None:
        self.run, self.open = 0, False


class ImbalanceDetector:
    """G/D imbalance: the ratio of mean adversarial loss to mean D loss over each aligned
    window of ``BLOCK_STEPS`` steps drifts by ``factor`` from the first window's ratio.

    Windows are aligned to step numbers (the binary index's blocks), so the rows and the
    index summaries give the same verdicts.
    """

    MIN_VALUES = 4

    def __init__(self, alerts: AlertLog, factor: float = 4.0) -> None:
        self.alerts, self.factor = alerts, factor
        self.key: int | None = None
        self.sums = [0.0, 0, 0.0, 0]  # adv sum, adv count, d sum, d count
        self.end: tuple[int, float] | None = None
        self.ref: float | None = None
        self.open = False

    def _close(self) -> None:
        a_sum, a_n, d_sum, d_n = self.sums
        if a_n >= self.MIN_VALUES and d_n >= self.MIN_VALUES and self.end is not None:
            a, b = a_sum / a_n, d_sum / d_n
            if a > 0 and b > 0:
                self._judge(a / b, *self.end)
        self.sums = [0.0, 0, 0.0, 0]

    def _judge(self, ratio: float, step: int, t: float) -> None:
        if self.ref is None:
            self.ref = ratio
            return
        drift = ratio / self.ref
        f = self.factor
        if (drift > f or drift < 1.0 / f) and not self.open:
            self.open = True
            self.alerts.add(
                AlertRow(
                    ALERT_IMBALANCE,
                    LEVEL_WARNING,
                    step,
                    f"G/D imbalance: adv/D ratio {ratio:.3g} drifted x{drift:.2f} "
                    f"from {self.ref:.3g}",
                    t,
                )
            )
        elif 1.0 / math.sqrt(f) < drift < math.sqrt(f):
            self.open = False

    def add(self, key: int, sums: Sequence[float], end: tuple[int, float]) -> None:
        if self.key is not None and key != self.key:
            self._close()
        self.key = key
        for i, v in enumerate(sums):
            self.sums[i] += v
        self.end = end

    def rows(self, steps: Sequence[int], ts: Sequence[float], adv: Sequence, d: Sequence) -> None:
        i, n = 0, len(steps)
        isfinite = math.isfinite
        while i < n:
            key = steps[i] // BLOCK_STEPS
            j = i + 1
            while j < n and steps[j] // BLOCK_STEPS == key:
                j += 1
            fa = [v for v in adv[i:j] if isfinite(v)]
            fd = [v for v in d[i:j] if isfinite(v)]
            self.add(
                key, (math.fsum(fa), len(fa), math.fsum(fd), len(fd)), (steps[j - 1], ts[j - 1])
            )
            i = j

    def reset_window(self) -> None:
        """A restart or a backwards jump: the current window does not continue."""
        self.key = None
        self.sums = [0.0, 0, 0.0, 0]


class GradSpikeDetector:
    """A gradient-norm spike: a norm (G or D) over ``factor`` x its recent median, the
    median of the means of the last ``blocks`` aligned windows of ``BLOCK_STEPS`` steps
    before the current one. Once per episode and network: an episode ends with a window
    that has no spike.

    Windows are aligned to step numbers (the binary index's blocks), so the rows and the
    index summaries give the same verdicts (``summary_ok`` sends a block with a spike to
    its rows, where the step is exact).
    """

    NAMES = ("G", "D")
    MIN_BLOCKS = 2  # windows seen before a median is trusted

    def __init__(self, alerts: AlertLog, factor: float = 10.0, blocks: int = 8) -> None:
        self.alerts, self.factor = alerts, factor
        self.history: tuple[deque[float], ...] = (deque(maxlen=blocks), deque(maxlen=blocks))
        self.key: int | None = None
        self.sums = [[0.0, 0], [0.0, 0]]  # per network: finite sum and count of the window
        self.spiked = [False, False]  # a spike in the current window
        self.open = [False, False]

    def median(self, i: int) -> float | None:
        h = self.history[i]
        if len(h) < self.MIN_BLOCKS:
            return None
        v = sorted(h)
        m = len(v) // 2
        return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2

    def _limit(self, i: int) -> float | None:
        ref = self.median(i)
        return None if ref is None or ref <= 0 else self.factor * ref

    def _enter(self, key: int) -> None:
        if self.key is not None and key != self.key:
            for i in range(2):
                s, n = self.sums[i]
                if n:
                    self.history[i].append(s / n)
                if not self.spiked[i]:
                    self.open[i] = False
            self.sums = [[0.0, 0], [0.0, 0]]
            self.spiked = [False, False]
        self.key = key

    def rows(self, steps: Sequence[int], ts: Sequence[float], g: Sequence, d: Sequence) -> None:
        i, n = 0, len(steps)
        isfinite = math.isfinite
        cols = (g, d)
        while i < n:
            key = steps[i] // BLOCK_STEPS
            j = i + 1
            while j < n and steps[j] // BLOCK_STEPS == key:
                j += 1
            self._enter(key)
            for c in range(2):
                vals = cols[c][i:j]
                fin = [v for v in vals if isfinite(v)]
                if not fin:
                    continue
                self.sums[c][0] += math.fsum(fin)
                self.sums[c][1] += len(fin)
                lim = self._limit(c)
                if lim is None or max(fin) <= lim:
                    continue
                self.spiked[c] = True
                if self.open[c]:
                    continue
                self.open[c] = True
                k = next(x for x, v in enumerate(vals) if isfinite(v) and v > lim)
                v, ref = vals[k], self.median(c) or 0.0
                self.alerts.add(
                    AlertRow(
                        ALERT_GRAD_SPIKE,
                        LEVEL_WARNING,
                        steps[i + k],
                        f"{self.NAMES[c]} gradient norm spike: {v:.3g} at step "
                        f"{steps[i + k]:,}, x{v / ref:.1f} its recent median {ref:.3g}",
                        ts[i + k],
                    )
                )
            i = j

    def summary_ok(self, hi_g: float, hi_d: float) -> bool:
        """Whether a window whose largest norms are ``hi_g`` / ``hi_d`` has no spike."""
        for c, hi in enumerate((hi_g, hi_d)):
            lim = self._limit(c)
            if lim is not None and hi > lim:
                return False
        return True

    def summary(self, key: int, sums: Sequence[tuple[float, int]]) -> None:
        """A window from its summary (``summary_ok`` held): per network (sum, count)."""
        self._enter(key)
        for c, (s, n) in enumerate(sums):
            self.sums[c][0] += s
            self.sums[c][1] += n

    def reset_window(self, forget: bool = False) -> None:
        """A restart or a backwards jump: the current window does not continue (``forget``:
        the run starts over, the medians too)."""
        self.key = None
        self.sums = [[0.0, 0], [0.0, 0]]
        self.spiked = [False, False]
        self.open = [False, False]
        if forget:
            for h in self.history:
                h.clear()


class BackwardsDetector:
    """Steps going backwards without a run_start in between: the log is not one run."""

    def __init__(self, alerts: AlertLog) -> None:
        self.alerts = alerts
        self.seen = 0

    def report(self, prev: int, step: int, t: float) -> None:
        self.seen += 1
        if self.seen <= 3 or self.seen % 1000 == 0:
            self.alerts.add(
                AlertRow(
                    ALERT_BACKWARDS,
                    LEVEL_WARNING,
                    step,
                    f"step went back from {prev:,} to {step:,} without a run_start "
                    f"(seen {self.seen} time(s)): the log may mix runs",
                    t,
                )
            )


class StallDetector:
    """No event for ``factor`` x the usual interval (at least ``min_s``) while running."""

    def __init__(
        self, alerts: AlertLog, factor: float = STALL_FACTOR, min_s: float = STALL_MIN_S
    ) -> None:
        self.alerts, self.factor, self.min_s = alerts, factor, min_s
        self.open = False

    def limit(self, usual: float | None, last_pause_s: float) -> float | None:
        return stall_limit(usual, last_pause_s, self.factor, self.min_s)

    def check(
        self, since: float | None, limit: float | None, step, now: float, usual, starting=False
    ) -> None:
        """``since``: seconds the live trainer has been silent (time without a trainer is not
        counted); ``starting``: it has not written its run_start yet (start-up)."""
        if since is not None and limit is not None and since > limit and not self.open:
            self.open = True
            msg = (
                f"the trainer started {since:.0f} s ago and has not begun its run (start-up: "
                f"loading torch, checking the corpus, building the models); see its train.log"
                if starting
                else f"no event for {since:.0f} s (usual interval {(usual or 0):.2f} s)"
            )
            self.alerts.add(AlertRow(ALERT_STALLED, LEVEL_WARNING, step, msg, now))
