"""The min/max pyramid: spikes and NaNs stay visible at every zoom, memory stays bounded."""

from __future__ import annotations

import math
import random

import pytest

from nal_tui.series import MinMaxSeries


def _brute(xs, ys, start, bw, k):
    """Finite min, max and non-finite flag of the points in output bucket k."""
    vals = [y for x, y in zip(xs, ys, strict=True) if start + k * bw <= x < start + (k + 1) * bw]
    fin = [y for y in vals if math.isfinite(y)]
    return (min(fin) if fin else math.nan), (max(fin) if fin else math.nan), len(fin) < len(vals)


def test_small_series_is_exact_per_bucket():
    rng = random.Random(1)
    xs = list(range(1, 2001))
    ys = [rng.random() for _ in xs]
    ys[777] = math.nan
    s = MinMaxSeries()
    s.extend(xs, ys)
    for n in (1, 3, 7, 100, 2000):
        steps, mins, maxs, mask = s.buckets(n)
        bw = -(-2000 // n)
        assert len(steps) <= n
        for st, lo, hi, bad in zip(steps, mins, maxs, mask, strict=True):
            k = (st - 1) // bw
            want = _brute(xs, ys, 1, bw, k)
            assert (lo, hi, bad) == want


@pytest.mark.parametrize("cap", [16, 64, 1 << 16])
def test_single_nan_and_spike_visible_at_any_bucket_count(cap):
    rng = random.Random(cap)
    n = 100_000
    xs = list(range(1, n + 1))
    ys = [1.0 + rng.random() for _ in xs]
    ys[31_337] = math.nan
    ys[77_777] = 1000.0  # one spike
    ys[12_345] = -5.0  # one dip
    s = MinMaxSeries(cap=cap, recent=64)
    s.extend(xs[:50_000], ys[:50_000])
    for x, y in zip(xs[50_000:50_500], ys[50_000:50_500], strict=True):
        s.append(x, y)  # live, one at a time
    s.extend(xs[50_500:], ys[50_500:])
    for nb in (1, 2, 5, 13, 100, 999, 10_000):
        steps, mins, maxs, mask = s.buckets(nb)
        assert 1 <= len(steps) <= nb
        assert sum(mask) == 1, nb  # the one NaN, in exactly one bucket
        nan_step = steps[mask.index(True)]
        assert nan_step <= 31_338  # at or before the NaN's step, never after it
        assert max(maxs) == 1000.0
        assert min(mins) == -5.0
        assert steps == sorted(steps)


def test_memory_bounded_for_3_million_values():
    s = MinMaxSeries()
    rng = random.Random(3)
    total = 3_000_000
    step = 0
    for _ in range(total // 30_000):
        xs = list(range(step + 1, step + 30_001))
        ys = [rng.random() for _ in xs]
        step += 30_000
        s.extend(xs, ys)
    s.append(step + 1, 99.0)
    assert len(s) == total + 1
    assert s.stored() <= s.cap + 2 * s.recent
    stored_arrays = sum(len(seg.store.lo) for seg in s.segments)
    assert stored_arrays <= s.cap
    steps, _mins, maxs, _mask = s.buckets(200)
    assert steps[0] == 1 and max(maxs) == 99.0


def test_resume_to_an_earlier_step_keeps_both_stretches():
    s = MinMaxSeries(cap=16)
    s.extend(list(range(1, 1001)), [1.0] * 1000)
    s.extend(list(range(501, 1501)), [2.0] * 1000)  # resumed from step 500
    assert len(s.segments) == 2
    steps, mins, maxs, _ = s.buckets(3)
    # The middle third (501..1000) holds both the abandoned and the resumed values.
    assert steps == [1, 501, 1001]
    assert (mins[1], maxs[1]) == (1.0, 2.0)
    assert (mins[0], maxs[0]) == (1.0, 1.0)
    assert (mins[2], maxs[2]) == (2.0, 2.0)


def test_zoomed_window_uses_raw_detail():
    s = MinMaxSeries(cap=16, recent=100)
    xs = list(range(1, 10_001))
    s.extend(xs, [float(x) for x in xs])
    assert s.segments[0].width > 1
    steps, mins, maxs, mask = s.buckets(10, 9991, 10_000)
    assert steps == list(range(9991, 10_001))
    assert mins == maxs == [float(x) for x in range(9991, 10_001)]
    assert not any(mask)


def test_all_nan_bucket_and_infinity():
    s = MinMaxSeries()
    s.extend([1, 2, 3, 4], [math.nan, math.inf, 1.0, 2.0])
    steps, mins, maxs, mask = s.buckets(2)
    assert steps == [1, 3]
    assert math.isnan(mins[0]) and math.isnan(maxs[0]) and mask[0]
    assert (mins[1], maxs[1], mask[1]) == (1.0, 2.0, False)


def test_bad_arguments():
    s = MinMaxSeries()
    with pytest.raises(ValueError, match="2 steps but 1 values"):
        s.extend([1, 2], [1.0])
    with pytest.raises(ValueError, match="n must be >= 1"):
        s.buckets(0)
    assert s.buckets(5) == ([], [], [], [])


def test_huge_finite_values_are_not_flagged_as_nan():
    # Their sum overflows to infinity; the values themselves are finite.
    for cap in (4, 16, 1024):
        s = MinMaxSeries(cap=cap, recent=1)
        s.extend(list(range(1, 65)), [1e308] * 64)
        for i in range(65, 100):
            s.append(i, 1e308)
        _steps, mins, maxs, mask = s.buckets(8)
        assert mask and not any(mask) and set(mins) == set(maxs) == {1e308}


def test_arrays_in_short_runs_match_one_point_at_a_time():
    from array import array

    ys = [((i * 7919) % 101) / 10 for i in range(1, 3001)]
    ys[1234] = math.nan
    a, b = MinMaxSeries(cap=64, recent=16), MinMaxSeries(cap=64, recent=16)
    for i in range(0, 3000, 37):  # runs shorter than the bucket width later on
        xs = array("q", range(i + 1, min(i + 38, 3001)))
        a.extend(xs, array("d", ys[i : i + 37]))
    for i, y in enumerate(ys, start=1):
        b.append(i, y)
    for n in (5, 64, 3000):
        assert repr(a.buckets(n)) == repr(b.buckets(n))
