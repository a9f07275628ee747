"""Min/max series for the loss charts: bounded memory, every spike and NaN stays visible.

Points are kept as buckets per *segment* (a stretch of strictly increasing steps; steps that
go backwards without a ``run_start`` open a new one, so nothing is dropped). A bucket is
(first step, last step, finite min, finite max, non-finite flag, points) and covers one
aligned window of steps ``[k * W, (k + 1) * W)``; ``W`` (a power of two, the same for the whole
series) starts at 1 and doubles whenever the series would hold more than ``cap`` buckets.
Because windows are aligned to step numbers, the whole run keeps one resolution, and the
buckets do not depend on how the points arrived (one at a time, in batches, or as the
backlog loader's pre-aggregated buckets of an aligned block, ``add_bucket``).

``truncate(step)`` forgets every point after ``step`` (a branch abandoned by a resume from
an older checkpoint, docs/events.md "Branches") in one pass over the stored buckets, so its
cost is bounded by ``cap`` whatever the run's length. A bucket that straddles ``step``
keeps its min/max (its points are not stored): at width 1 the cut is exact; in a run longer
than the chart holds, the one window that holds ``step`` may still show an abandoned spike.
"""

from __future__ import annotations

import math
import operator
from array import array
from collections.abc import Sequence

DEFAULT_CAP = 4096  # a whole-run chart needs about two buckets per terminal column
_INF = math.inf
_isfinite = math.isfinite

Buckets = tuple[list[int], list[float], list[float], list[bool]]
_ONE = array("q", [1])


def is_rising(xs: Sequence[int]) -> bool:
    """Whether ``xs`` strictly increases."""
    if len(xs) < 2:
        return True
    return not any(map(operator.ge, xs[:-1], xs[1:]))


class _Segment:
    """Parallel arrays of buckets over one strictly increasing stretch of steps."""

    __slots__ = ("x0", "x1", "lo", "hi", "bad", "n")

    def __init__(self) -> None:
        self.x0 = array("q")
        self.x1 = array("q")
        self.lo = array("d")  # +inf when the bucket holds no finite value
        self.hi = array("d")  # -inf likewise
        self.bad = array("B")  # 1 when the bucket holds a NaN or an infinity
        self.n = array("q")  # points in the bucket

    def __len__(self) -> int:
        return len(self.lo)

    @property
    def first(self) -> int:
        return self.x0[0]

    @property
    def last(self) -> int:
        return self.x1[-1]

    def push(self, x0: int, x1: int, lo: float, hi: float, bad: int, shift: int, n: int = 1) -> int:
        """Add a bucket of ``n`` points, merged into the last one when it falls in the same
        window; returns the buckets added (0 or 1)."""
        if len(self.lo) and self.x0[-1] >> shift == x0 >> shift:
            self.x1[-1] = x1
            if lo < self.lo[-1]:
                self.lo[-1] = lo
            if hi > self.hi[-1]:
                self.hi[-1] = hi
            if bad:
                self.bad[-1] = 1
            self.n[-1] += n
            return 0
        self.x0.append(x0)
        self.x1.append(x1)
        self.lo.append(lo)
        self.hi.append(hi)
        self.bad.append(bad)
        self.n.append(n)
        return 1

    def cut(self, after: int) -> None:
        """Forget the buckets that start after step ``after``; a bucket that straddles it
        ends at ``after`` (its min/max stay: its points are not stored)."""
        x0 = self.x0
        i, j = 0, len(x0)
        while i < j:  # the first bucket starting after ``after`` (x0 rises)
            mid = (i + j) // 2
            if x0[mid] <= after:
                i = mid + 1
            else:
                j = mid
        for a in (self.x0, self.x1, self.lo, self.hi, self.bad, self.n):
            del a[i:]
        if i and self.x1[-1] > after:
            self.x1[-1] = after

    def push_points(self, xs: Sequence[int], ys: Sequence[float], shift: int) -> int:
        """Add rising points; returns the buckets added."""
        if shift == 0 and (not len(self.lo) or xs[0] > self.x1[-1]):
            s = sum(ys)
            if s - s == 0.0:  # width-1 windows, all finite: one C-level extend per array
                self.x0.extend(xs)
                self.x1.extend(xs)
                self.lo.extend(ys)
                self.hi.extend(ys)
                self.bad.frombytes(bytes(len(ys)))
                self.n.extend(_ONE * len(ys))
                return len(ys)
        added = 0
        n, i = len(xs), 0
        while i < n:
            key = xs[i] >> shift
            j = i + 1
            if shift:  # the window's end, by bisection on the rising steps
                lim, hi_j = (key + 1) << shift, n
                while j < hi_j:
                    mid = (j + hi_j) // 2
                    if xs[mid] < lim:
                        j = mid + 1
                    else:
                        hi_j = mid
            sl = ys[i:j]
            t = sum(sl)
            if t - t == 0.0:
                added += self.push(xs[i], xs[j - 1], min(sl), max(sl), 0, shift, j - i)
            else:
                fin = [v for v in sl if _isfinite(v)]
                lo, hi = (min(fin), max(fin)) if fin else (_INF, -_INF)
                added += self.push(xs[i], xs[j - 1], lo, hi, int(len(fin) < len(sl)), shift, j - i)
            i = j
        return added

    def coarsen(self, shift: int) -> None:
        """Merge the buckets that share a window of ``1 << shift`` steps (neighbours: the
        steps rise), a whole array at a time rather than one ``push`` per bucket."""
        x0 = self.x0
        m = len(x0)
        if m < 2:
            return
        keys = [x >> shift for x in x0]
        starts = [0, *[i for i in range(1, m) if keys[i] != keys[i - 1]]]
        if len(starts) == m:
            return  # no two buckets share a window
        ends = [*starts[1:], m]
        spans = list(zip(starts, ends, strict=True))
        lo, hi, bad, n, x1 = self.lo, self.hi, self.bad, self.n, self.x1
        self.x0 = array("q", [x0[a] for a in starts])
        self.x1 = array("q", [x1[b - 1] for b in ends])
        self.lo = array("d", [min(lo[a:b]) for a, b in spans])
        self.hi = array("d", [max(hi[a:b]) for a, b in spans])
        self.bad = array("B", [max(bad[a:b]) for a, b in spans])
        self.n = array("q", [sum(n[a:b]) for a, b in spans])


def _windows(xs: Sequence[int], shift: int) -> int:
    """Distinct windows of ``1 << shift`` steps among rising ``xs``."""
    if shift == 0:
        return len(xs)
    return len(set(x >> shift for x in xs))


class MinMaxSeries:
    """A loss series over a whole run in bounded memory; see the module docstring."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 4:
            raise ValueError(f"MinMaxSeries: cap must be >= 4 (got {cap})")
        self.cap = cap
        self.segments: list[_Segment] = []
        self.count = 0  # raw points seen
        self.shift = 0  # buckets cover windows of 1 << shift steps
        self._stored = 0

    def __len__(self) -> int:
        return self.count

    def stored(self) -> int:
        """Buckets held in memory (at most ``cap``)."""
        return self._stored

    @property
    def width(self) -> int:
        """Steps per bucket window."""
        return 1 << self.shift

    @property
    def first_step(self) -> int | None:
        return min(s.first for s in self.segments) if self.segments else None

    @property
    def last_step(self) -> int | None:
        return self.segments[-1].last if self.segments else None

    def extremes(self) -> tuple[float, int, float, int] | None:
        """(min, its step, max, its step) over the finite values; None when there is none.

        The step is the first step of the bucket that holds the extreme: exact while a
        bucket is one step wide (``width`` 1), else within ``width`` steps after it.
        """
        lo, lo_s, hi, hi_s = _INF, 0, -_INF, 0
        for seg in self.segments:
            for i in range(len(seg.lo)):
                if seg.lo[i] < lo:
                    lo, lo_s = seg.lo[i], seg.x0[i]
                if seg.hi[i] > hi:
                    hi, hi_s = seg.hi[i], seg.x0[i]
        return None if lo > hi else (lo, lo_s, hi, hi_s)

    def _segment_for(self, x: int) -> _Segment:
        seg = self.segments[-1] if self.segments else None
        if seg is None or (len(seg) and x <= seg.last):
            seg = _Segment()
            self.segments.append(seg)
            if len(self.segments) > max(2, self.cap // 8):
                self._merge_oldest()  # a log that restarts without end stays bounded
        return seg

    def _merge_oldest(self) -> None:
        """Fold the two oldest segments into one (their buckets, by window, in step order)."""
        a, b = self.segments[0], self.segments[1]
        rows = sorted(
            [*zip(a.x0, a.x1, a.lo, a.hi, a.bad, a.n, strict=True),
             *zip(b.x0, b.x1, b.lo, b.hi, b.bad, b.n, strict=True)]
        )  # fmt: skip
        merged = _Segment()
        for x0, x1, lo, hi, bad, n in rows:
            merged.push(x0, x1, lo, hi, bad, self.shift, n)
        self.segments[:2] = [merged]
        self._stored = sum(len(s) for s in self.segments)

    def append(self, x: int, y: float) -> None:
        self.extend((x,), (y,))

    def extend(self, xs: Sequence[int], ys: Sequence[float], *, rising: bool | None = None) -> None:
        """Append points in log order; a step not above the previous one opens a segment."""
        n = len(xs)
        if n != len(ys):
            raise ValueError(f"MinMaxSeries.extend: {n} steps but {len(ys)} values")
        if n == 0:
            return
        cuts = [0]
        if not (is_rising(xs) if rising is None else rising):
            cuts += [j for j in range(1, n) if xs[j] <= xs[j - 1]]
        cuts.append(n)
        for i, j in zip(cuts[:-1], cuts[1:], strict=True):
            px, py = (xs, ys) if (i, j) == (0, n) else (xs[i:j], ys[i:j])
            seg = self._segment_for(px[0])
            # Widen the windows first when these points would not fit: never hold more
            # than the cap, not even for a moment (a backlog batch can be 20,000 points).
            while self._stored + self._new_windows(seg, px) > self.cap and self.shift < 62:
                self._coarsen()
            self._stored += seg.push_points(px, py, self.shift)
        self.count += n

    def _new_windows(self, seg: _Segment, xs: Sequence[int]) -> int:
        w = _windows(xs, self.shift)
        if len(seg) and seg.x0[-1] >> self.shift == xs[0] >> self.shift:
            w -= 1  # the first points continue the segment's last window
        return w

    def add_bucket(self, x0: int, x1: int, lo: float, hi: float, bad: bool, count: int) -> None:
        """Append a pre-aggregated bucket of ``count`` points over steps ``x0..x1``."""
        seg = self._segment_for(x0)
        self._stored += seg.push(x0, x1, lo, hi, int(bad), self.shift, count)
        self.count += count
        while self._stored > self.cap and self.shift < 62:
            self._coarsen()

    def truncate(self, after: int) -> None:
        """Forget every point after step ``after`` (see the module docstring); O(stored)."""
        kept = []
        for seg in self.segments:
            if len(seg) and seg.last > after:
                seg.cut(after)
            if len(seg):
                kept.append(seg)
        self.segments = kept
        self._stored = sum(len(s) for s in kept)
        self.count = sum(sum(s.n) for s in kept)

    def _coarsen(self) -> None:
        """Double the window and merge the buckets that now share one."""
        self.shift += 1
        for seg in self.segments:
            seg.coarsen(self.shift)
        self._stored = sum(len(s) for s in self.segments)

    def buckets(self, n: int, start: int | None = None, end: int | None = None) -> Buckets:
        """At most ``n`` buckets over steps ``start..end`` (default: the whole run).

        Returns ``(steps, mins, maxs, nan_mask)``: each bucket's first step, the finite min
        and max of every value in it (NaN when it holds no finite value), and whether it
        holds a NaN or an infinity. Empty buckets are left out.
        """
        if n < 1:
            raise ValueError(f"MinMaxSeries.buckets: n must be >= 1 (got {n})")
        if not self.segments or not self._stored:
            return [], [], [], []
        lo_x = self.first_step if start is None else start
        hi_x = max(s.last for s in self.segments if len(s)) if end is None else end
        if hi_x < lo_x:
            return [], [], [], []
        bw = -(-(hi_x - lo_x + 1) // n)  # steps per output bucket
        acc: dict[int, list[float]] = {}
        for seg in self.segments:
            if not len(seg) or seg.last < lo_x or seg.first > hi_x:
                continue
            for x0, lo, hi, bad in zip(seg.x0, seg.lo, seg.hi, seg.bad, strict=True):
                if x0 < lo_x or x0 > hi_x:
                    continue
                k = (x0 - lo_x) // bw
                cur = acc.get(k)
                if cur is None:
                    acc[k] = [lo, hi, bad]
                else:
                    if lo < cur[0]:
                        cur[0] = lo
                    if hi > cur[1]:
                        cur[1] = hi
                    if bad:
                        cur[2] = 1
        steps, mins, maxs, mask = [], [], [], []
        for k in sorted(acc):
            lo, hi, bad = acc[k]
            steps.append(lo_x + k * bw)
            fin = lo <= hi
            mins.append(lo if fin else math.nan)
            maxs.append(hi if fin else math.nan)
            mask.append(bool(bad))
        return steps, mins, maxs, mask
