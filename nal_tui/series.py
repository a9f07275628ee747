"""Min/max series for the loss charts: bounded memory, every spike and NaN stays visible.

Points are kept per *segment* (a stretch of strictly increasing steps; a resume that
restarts from an earlier step opens a new one, so nothing is dropped). A segment stores
buckets of ``width`` raw points (first/last step, finite min, finite max, non-finite
flag); when it reaches ``cap`` buckets, each 4 neighbours merge and ``width`` grows 4x.
A raw tail of the newest points keeps full detail for zoomed-in views.
"""

from __future__ import annotations

import math
import operator
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

DEFAULT_CAP = 1 << 16  # buckets kept for the whole run, all segments together
DEFAULT_RECENT = 1 << 13  # raw points kept for the newest stretch
MERGE = 4  # buckets merged into one when a segment is full (fewer passes than pairs)
_INF = math.inf
_isfinite = math.isfinite

Buckets = tuple[list[int], list[float], list[float], list[bool]]


def is_rising(xs: Sequence[int]) -> bool:
    """Whether ``xs`` strictly increases; an evenly spaced ``array('q')`` is checked in C."""
    n = len(xs)
    if n < 2:
        return True
    first, last = xs[0], xs[-1]
    d = xs[1] - first
    if (
        d > 0
        and last - first == d * (n - 1)
        and isinstance(xs, array)
        and xs.typecode == "q"
        and xs == array("q", range(first, last + 1, d))
    ):
        return True
    return not any(map(operator.ge, xs[:-1], xs[1:]))


class _Store:
    """Parallel arrays of buckets: first step, last step, finite min/max, non-finite flag."""

    __slots__ = ("x0", "x1", "lo", "hi", "bad")

    def __init__(self) -> None:
        self.x0 = array("q")
        self.x1 = array("q")
        self.lo = array("d")  # +inf when the bucket holds no finite value
        self.hi = array("d")  # -inf likewise
        self.bad = array("B")  # 1 when the bucket holds a NaN or an infinity

    def __len__(self) -> int:
        return len(self.lo)

    def push(self, x0: int, x1: int, lo: float, hi: float, bad: int) -> None:
        self.x0.append(x0)
        self.x1.append(x1)
        self.lo.append(lo)
        self.hi.append(hi)
        self.bad.append(bad)

    def push_raw(self, xs: Sequence[int], ys: Sequence[float]) -> None:
        """Width-1 buckets straight from raw points (the fast path)."""
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

    def merge(self, f: int) -> tuple[array, array, array, array, array]:
        """Merge each ``f`` neighbouring buckets into one; returns the leftover last ones."""
        n = len(self.lo)
        m = n - n % f
        rest = (self.x0[m:], self.x1[m:], self.lo[m:], self.hi[m:], self.bad[m:])
        lo, hi, bad = self.lo, self.hi, self.bad
        self.x0 = array("q", self.x0[0:m:f])
        self.x1 = array("q", self.x1[f - 1 : m : f])
        self.lo = array("d", map(min, *(lo[k:m:f] for k in range(f))))
        self.hi = array("d", map(max, *(hi[k:m:f] for k in range(f))))
        self.bad = array("B", map(max, *(bad[k:m:f] for k in range(f))))
        return rest


class _Segment:
    """One strictly increasing stretch of steps, bucketed ``width`` raw points at a time."""

    __slots__ = ("store", "width", "cnt", "ax0", "ax1", "alo", "ahi", "abad", "first", "last")

    def __init__(self, first: int) -> None:
        self.store = _Store()
        self.width = 1
        self.first = first
        self.last = first
        self._reset_open()

    def _reset_open(self) -> None:
        self.cnt = 0
        self.ax0 = self.ax1 = 0
        self.alo, self.ahi, self.abad = _INF, -_INF, 0

    def add(self, x: int, y: float) -> None:
        """Add one raw point to the open bucket; close it when it holds ``width`` points."""
        if self.cnt == 0:
            self.ax0 = x
        self.ax1 = x
        if _isfinite(y):
            if y < self.alo:
                self.alo = y
            if y > self.ahi:
                self.ahi = y
        else:
            self.abad = 1
        self.cnt += 1
        self.last = x
        if self.cnt >= self.width:
            self.store.push(self.ax0, self.ax1, self.alo, self.ahi, self.abad)
            self._reset_open()

    def add_many(self, xs: Sequence[int], ys: Sequence[float]) -> None:
        """``add`` for points that fit in the open bucket, with one min/max per call."""
        k = len(ys)
        if k == 0:
            return
        if self.cnt + k > self.width:
            raise ValueError("add_many: more points than the open bucket holds")
        if self.cnt == 0:
            self.ax0 = xs[0]
        self.ax1 = self.last = xs[-1]
        s = sum(ys)
        if s - s == 0.0:  # all finite
            self.alo = min(self.alo, min(ys))
            self.ahi = max(self.ahi, max(ys))
        else:  # a NaN or an infinity (or a sum that overflowed: look at each value)
            fin = [v for v in ys if _isfinite(v)]
            if len(fin) < k:
                self.abad = 1
            if fin:
                self.alo = min(self.alo, min(fin))
                self.ahi = max(self.ahi, max(fin))
        self.cnt += k
        if self.cnt >= self.width:
            self.store.push(self.ax0, self.ax1, self.alo, self.ahi, self.abad)
            self._reset_open()

    def push_whole(self, xs: Sequence[int], ys: Sequence[float]) -> None:
        """Close whole buckets straight from raw points (open bucket empty, ``len % width == 0``)."""
        w = self.width
        st = self.store
        if w == 1:
            st.push_raw(xs, ys)
        elif _isfinite(s := sum(ys)) and s == s:
            # All finite: one C-level min/max per bucket, over w strided slices when there
            # are many buckets, else over each bucket's own slice (wide buckets, short runs).
            n = len(ys)
            st.x0.extend(xs[0::w])
            st.x1.extend(xs[w - 1 :: w])
            if w * w <= n:
                parts = [ys[k::w] for k in range(w)]
                st.lo.extend(map(min, *parts))
                st.hi.extend(map(max, *parts))
            else:
                cut = list(map(slice, range(0, n, w), range(w, n + w, w)))
                st.lo.extend(map(min, map(ys.__getitem__, cut)))
                st.hi.extend(map(max, map(ys.__getitem__, cut)))
            st.bad.frombytes(bytes(n // w))
        else:
            for j in range(0, len(ys), w):
                sl = ys[j : j + w]
                s = sum(sl)
                if s - s == 0.0:
                    st.push(xs[j], xs[j + w - 1], min(sl), max(sl), 0)
                else:
                    fin = [v for v in sl if _isfinite(v)]
                    lo, hi = (min(fin), max(fin)) if fin else (_INF, -_INF)
                    st.push(xs[j], xs[j + w - 1], lo, hi, int(len(fin) < len(sl)))
        self.last = xs[-1]

    def coarsen(self) -> None:
        """Merge stored buckets ``MERGE`` at a time (memory stays bounded, width grows)."""
        old = self.width
        x0, x1, lo, hi, bad = self.store.merge(MERGE)
        self.width *= MERGE
        if lo:
            # Leftover buckets make less than one new bucket: they join the open one,
            # whose points (if any) come after them.
            if not self.cnt:
                self.ax1 = x1[-1]
            self.ax0 = x0[0]
            self.alo = min(self.alo, min(lo))
            self.ahi = max(self.ahi, max(hi))
            self.abad |= max(bad)
            self.cnt += len(lo) * old

    def open_bucket(self) -> tuple[int, float, float, int] | None:
        return (self.ax0, self.alo, self.ahi, self.abad) if self.cnt else None


class MinMaxSeries:
    """A loss series over a whole run in bounded memory; see the module docstring."""

    def __init__(self, cap: int = DEFAULT_CAP, recent: int = DEFAULT_RECENT) -> None:
        if cap < 4 or recent < 1:
            raise ValueError(
                f"MinMaxSeries: cap must be >= 4 and recent >= 1 (got {cap}, {recent})"
            )
        self.cap = cap
        self.recent = recent
        self.segments: list[_Segment] = []
        # Raw points of the newest segment (arrays: extending them is a copy, not a loop);
        # turned into a width-1 store only when a chart asks for them.
        self._tail_x = array("q")
        self._tail_y = array("d")
        self._tail_store: tuple[int, _Store] | None = None
        self.count = 0  # raw points seen

    def __len__(self) -> int:
        return self.count

    def stored(self) -> int:
        """Buckets and raw tail points held in memory (bounded by ``cap + 2 * recent``)."""
        return sum(len(s.store) for s in self.segments) + len(self._tail_x)

    @property
    def first_step(self) -> int | None:
        return min(s.first for s in self.segments) if self.segments else None

    @property
    def last_step(self) -> int | None:
        return self.segments[-1].last if self.segments else None

    def append(self, x: int, y: float) -> None:
        self.extend((x,), (y,))

    def extend(self, xs: Sequence[int], ys: Sequence[float], *, rising: bool | None = None) -> None:
        """Append points in log order; a step not above the previous one opens a new segment.

        ``rising``: the caller already knows whether ``xs`` strictly rises (skips a check).
        """
        n = len(xs)
        if n != len(ys):
            raise ValueError(f"MinMaxSeries.extend: {n} steps but {len(ys)} values")
        if n == 0:
            return
        # Where the steps stop rising (a resume): looped over only if there is one.
        cuts = [0]
        if not (is_rising(xs) if rising is None else rising):
            cuts += [j for j in range(1, n) if xs[j] <= xs[j - 1]]
        cuts.append(n)
        for i, j in zip(cuts[:-1], cuts[1:], strict=True):
            seg = self.segments[-1] if self.segments else None
            if seg is None or xs[i] <= seg.last:
                seg = _Segment(xs[i])
                self.segments.append(seg)
                self._tail_x, self._tail_y = array("q"), array("d")
            if i == 0 and j == n:
                self._extend_segment(seg, xs, ys)
            else:
                self._extend_segment(seg, xs[i:j], ys[i:j])
        self.count += n

    def _extend_segment(self, seg: _Segment, xs: Sequence[int], ys: Sequence[float]) -> None:
        keep = 2 * self.recent
        _extend(self._tail_x, xs[-keep:])
        _extend(self._tail_y, ys[-keep:])
        if len(self._tail_x) > keep:
            del self._tail_x[: -self.recent]
            del self._tail_y[: -self.recent]
        n = len(xs)
        i = 0
        cap = self._seg_cap(seg)
        while i < n:
            if len(seg.store) >= cap:
                seg.coarsen()
            elif seg.cnt:  # fill the open bucket (it closes when full)
                k = min(seg.width - seg.cnt, n - i)
                seg.add_many(xs[i : i + k], ys[i : i + k])
                i += k
            else:
                w = seg.width
                take = min((n - i) // w, cap - len(seg.store))
                if take == 0:  # fewer points than a bucket: they open one
                    seg.add_many(xs[i:], ys[i:])
                    break
                seg.push_whole(xs[i : i + take * w], ys[i : i + take * w])
                i += take * w
        if len(seg.store) >= cap:
            seg.coarsen()
        while self.stored() - len(self._tail_x) > self.cap:
            max(self.segments, key=lambda s: len(s.store)).coarsen()

    def _seg_cap(self, seg: _Segment) -> int:
        others = sum(len(s.store) for s in self.segments if s is not seg)
        return max(self.cap - others, 2)

    def _tail_buckets(self) -> _Store:
        if self._tail_store is None or self._tail_store[0] != self.count:
            st = _Store()
            st.push_raw(self._tail_x, self._tail_y)
            self._tail_store = (self.count, st)
        return self._tail_store[1]

    def buckets(self, n: int, start: int | None = None, end: int | None = None) -> Buckets:
        """At most ``n`` buckets over steps ``start..end`` (default: the whole run).

        Returns ``(steps, mins, maxs, nan_mask)``: each bucket's first step, the finite
        min and max of every value in it (NaN when it holds no finite value), and whether
        it holds a NaN or an infinity. Empty buckets are left out.
        """
        if n < 1:
            raise ValueError(f"MinMaxSeries.buckets: n must be >= 1 (got {n})")
        if not self.segments:
            return [], [], [], []
        lo_x = self.first_step if start is None else start
        hi_x = max(s.last for s in self.segments) if end is None else end
        if hi_x < lo_x:
            return [], [], [], []
        bw = -(-(hi_x - lo_x + 1) // n)  # steps per output bucket
        acc: dict[int, list[float]] = {}
        for seg in self.segments:
            if seg.last < lo_x or seg.first > hi_x:
                continue
            tail = self._tail_buckets()
            if (
                seg is self.segments[-1]
                and seg.width > 1
                and len(tail)
                and tail.x0[0] <= max(lo_x, seg.first)
            ):
                _bin_store(tail, lo_x, hi_x, bw, acc)
                continue
            _bin_store(seg.store, lo_x, hi_x, bw, acc)
            ob = seg.open_bucket()
            if ob is not None and lo_x <= ob[0] <= hi_x:
                _merge(acc, (ob[0] - lo_x) // bw, ob[1], ob[2], ob[3])
        steps, mins, maxs, mask = [], [], [], []
        for k in sorted(acc):
            lo, hi, bad = acc[k]
            steps.append(lo_x + k * bw)
            fin = lo <= hi
            mins.append(lo if fin else math.nan)
            maxs.append(hi if fin else math.nan)
            mask.append(bool(bad))
        return steps, mins, maxs, mask


def _extend(a: array, xs: Sequence[float]) -> None:
    """``a.extend(xs)``; an array of another type (ints into floats) goes item by item."""
    if isinstance(xs, array) and xs.typecode != a.typecode:
        a.fromlist(xs.tolist())
    else:
        a.extend(xs)


def _merge(acc: dict[int, list[float]], k: int, lo: float, hi: float, bad: int) -> None:
    cur = acc.get(k)
    if cur is None:
        acc[k] = [lo, hi, bad]
    else:
        cur[0] = min(cur[0], lo)
        cur[1] = max(cur[1], hi)
        cur[2] = max(cur[2], bad)


def _bin_store(st: _Store, lo_x: int, hi_x: int, bw: int, acc: dict[int, list[float]]) -> None:
    """Fold a store's buckets (sorted by first step) into output bins of ``bw`` steps."""
    x0 = st.x0
    a = bisect_left(x0, lo_x)
    end = bisect_right(x0, hi_x)
    while a < end:
        k = (x0[a] - lo_x) // bw
        b = min(bisect_left(x0, lo_x + (k + 1) * bw, a, end), end)
        _merge(acc, k, min(st.lo[a:b]), max(st.hi[a:b]), max(st.bad[a:b]))
        a = b
