"""Min/max series for the loss charts: bounded memory, every spike and NaN stays visible.

Points are kept as buckets per *segment* (a stretch of strictly increasing steps; a resume
that restarts from an earlier step opens a new one, so nothing is dropped). A bucket is
(first step, last step, finite min, finite max, non-finite flag). Raw points are width-1
buckets; a backlog loader may add whole pre-aggregated buckets (``add_bucket``). When the
series holds more than ``cap`` buckets, neighbours in the largest segment merge in pairs,
so memory stays bounded and no extreme is lost.
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


def is_rising(xs: Sequence[int]) -> bool:
    """Whether ``xs`` strictly increases."""
    if len(xs) < 2:
        return True
    return not any(map(operator.ge, xs[:-1], xs[1:]))


class _Segment:
    """Parallel arrays of buckets over one strictly increasing stretch of steps."""

    __slots__ = ("x0", "x1", "lo", "hi", "bad")

    def __init__(self) -> None:
        self.x0 = array("q")
        self.x1 = array("q")
        self.lo = array("d")  # +inf when the bucket holds no finite value
        self.hi = array("d")  # -inf likewise
        self.bad = array("B")  # 1 when the bucket holds a NaN or an infinity

    def __len__(self) -> int:
        return len(self.lo)

    @property
    def first(self) -> int:
        return self.x0[0]

    @property
    def last(self) -> int:
        return self.x1[-1]

    def push(self, x0: int, x1: int, lo: float, hi: float, bad: int) -> None:
        self.x0.append(x0)
        self.x1.append(x1)
        self.lo.append(lo)
        self.hi.append(hi)
        self.bad.append(bad)

    def push_points(self, xs: Sequence[int], ys: Sequence[float]) -> None:
        s = sum(ys)
        if s - s == 0.0:  # all finite: one C-level extend per array
            self.x0.extend(xs)
            self.x1.extend(xs)
            self.lo.extend(ys)
            self.hi.extend(ys)
            self.bad.frombytes(bytes(len(ys)))
            return
        for x, y in zip(xs, ys, strict=True):
            if _isfinite(y):
                self.push(x, x, y, y, 0)
            else:
                self.push(x, x, _INF, -_INF, 1)

    def halve(self) -> None:
        """Merge neighbouring buckets in pairs (an odd last one stays as it is)."""
        n = len(self.lo)
        m = n - n % 2
        lo, hi, bad = self.lo, self.hi, self.bad
        self.x0 = self.x0[0:m:2] + self.x0[m:]
        self.x1 = self.x1[1:m:2] + self.x1[m:]
        self.lo = array("d", map(min, lo[0:m:2], lo[1:m:2])) + lo[m:]
        self.hi = array("d", map(max, hi[0:m:2], hi[1:m:2])) + hi[m:]
        self.bad = array("B", map(max, bad[0:m:2], bad[1:m:2])) + bad[m:]


def _prebucket(xs: Sequence[int], ys: Sequence[float], width: int) -> list[tuple]:
    """Raw points into buckets of ``width`` points (one C-level min/max per bucket)."""
    out = []
    for j in range(0, len(ys), width):
        sl = ys[j : j + width]
        s = sum(sl)
        if s - s == 0.0:
            out.append((xs[j], xs[min(j + width, len(xs)) - 1], min(sl), max(sl), 0))
        else:
            fin = [v for v in sl if _isfinite(v)]
            lo, hi = (min(fin), max(fin)) if fin else (_INF, -_INF)
            out.append((xs[j], xs[min(j + width, len(xs)) - 1], lo, hi, int(len(fin) < len(sl))))
    return out


class MinMaxSeries:
    """A loss series over a whole run in bounded memory; see the module docstring."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 4:
            raise ValueError(f"MinMaxSeries: cap must be >= 4 (got {cap})")
        self.cap = cap
        self.segments: list[_Segment] = []
        self.count = 0  # raw points seen
        self._stored = 0

    def __len__(self) -> int:
        return self.count

    def stored(self) -> int:
        """Buckets held in memory (at most ``cap``)."""
        return self._stored

    @property
    def first_step(self) -> int | None:
        return min(s.first for s in self.segments) if self.segments else None

    @property
    def last_step(self) -> int | None:
        return self.segments[-1].last if self.segments else None

    def _segment_for(self, x: int) -> _Segment:
        seg = self.segments[-1] if self.segments else None
        if seg is None or (len(seg) and x <= seg.last):
            seg = _Segment()
            self.segments.append(seg)
        return seg

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
            if len(px) > self.cap // 4:
                width = -(-len(px) // (self.cap // 8))
                for b in _prebucket(px, py, width):
                    seg.push(*b)
                self._stored += -(-len(px) // width)
            else:
                seg.push_points(px, py)
                self._stored += len(px)
            self._compact()
        self.count += n

    def add_bucket(self, x0: int, x1: int, lo: float, hi: float, bad: bool, count: int) -> None:
        """Append a pre-aggregated bucket of ``count`` points over steps ``x0..x1``."""
        seg = self._segment_for(x0)
        seg.push(x0, x1, lo, hi, int(bad))
        self._stored += 1
        self.count += count
        self._compact()

    def _compact(self) -> None:
        while self._stored > self.cap:
            seg = max(self.segments, key=len)
            before = len(seg)
            if before < 2:
                break
            seg.halve()
            self._stored -= before - len(seg)

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
