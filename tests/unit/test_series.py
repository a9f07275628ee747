"""Min/max series: bounded memory, every spike and NaN visible at any bucket count."""

from __future__ import annotations

import math
import random

import pytest

from nal_tui.core.reducer.series import MinMaxSeries


def test_small_series_is_exact():
    s = MinMaxSeries()
    s.extend(list(range(1, 11)), [float(i) for i in range(1, 11)])
    steps, lo, hi, nan = s.buckets(10)
    assert steps == list(range(1, 11)) and lo == hi == [float(i) for i in range(1, 11)]
    assert not any(nan)


@pytest.mark.parametrize("n", [4, 64, 4096])
def test_spike_and_nan_survive_compaction(n):
    s = MinMaxSeries(cap=256)
    xs = list(range(1, 100_001))
    ys = [1.0] * len(xs)
    ys[31_337] = 1e6
    ys[77_777] = math.nan
    s.extend(xs, ys)
    assert s.stored() <= 256 and s.count == len(xs)
    _, lo, hi, nan = s.buckets(n)
    assert max(v for v in hi if v == v) == 1e6 and sum(nan) == 1


def test_restart_opens_a_segment_and_buckets_cover_both():
    s = MinMaxSeries()
    s.extend([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0])
    s.extend([2, 3], [10.0, 11.0])
    assert len(s.segments) == 2 and s.last_step == 3
    assert max(s.buckets(100)[2]) == 11.0


def test_prebuilt_buckets_mix_with_points():
    s = MinMaxSeries(cap=8)
    for k in range(20):
        s.add_bucket(k * 256, k * 256 + 255, 1.0, 2.0 + k, k == 7, 256)
    s.extend([20 * 256 + 1, 20 * 256 + 2], [0.5, 0.7])
    assert s.stored() <= 8 and s.count == 20 * 256 + 2
    _, lo, hi, nan = s.buckets(100)
    assert min(lo) == 0.5 and max(hi) == 21.0 and any(nan)


def test_memory_bounded_for_a_million_points():
    s = MinMaxSeries()
    rng = random.Random(0)
    for k in range(0, 1_000_000, 20_000):
        xs = list(range(k + 1, k + 20_001))
        s.extend(xs, [rng.random() for _ in xs])
    assert s.stored() <= s.cap and s.count == 1_000_000


# ---- ported from main's test_series


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
            want = _brute(xs, ys, 1, bw, (st - 1) // bw)
            assert (lo, hi, bad) == pytest.approx(want, nan_ok=True)


@pytest.mark.parametrize("cap", [16, 64, 1 << 16])
def test_single_nan_spike_and_dip_visible_at_any_bucket_count(cap):
    rng = random.Random(cap)
    n = 100_000
    xs = list(range(1, n + 1))
    ys = [1.0 + rng.random() for _ in xs]
    ys[31_337] = math.nan
    ys[77_777] = 1000.0  # one spike
    ys[12_345] = -5.0  # one dip
    s = MinMaxSeries(cap=cap)
    s.extend(xs[:50_000], ys[:50_000])
    for x, y in zip(xs[50_000:50_500], ys[50_000:50_500], strict=True):
        s.append(x, y)  # live, one at a time
    s.extend(xs[50_500:], ys[50_500:])
    for nb in (1, 2, 5, 13, 100, 999, 10_000):
        steps, mins, maxs, mask = s.buckets(nb)
        assert 1 <= len(steps) <= nb
        assert sum(mask) == 1, nb  # the one NaN, in exactly one bucket
        assert steps[mask.index(True)] <= 31_338  # at or before the NaN's step, never after
        assert max(maxs) == 1000.0 and min(mins) == -5.0
        assert steps == sorted(steps)


def test_resume_to_an_earlier_step_keeps_both_stretches():
    s = MinMaxSeries(cap=16)
    s.extend(list(range(1, 1001)), [1.0] * 1000)
    s.extend(list(range(501, 1501)), [2.0] * 1000)  # resumed from step 500
    assert len(s.segments) == 2
    steps, mins, maxs, _ = s.buckets(3)
    # The middle third (501..1000) holds both the abandoned and the resumed values.
    assert (mins[0], maxs[0]) == (1.0, 1.0)
    assert (mins[1], maxs[1]) == (1.0, 2.0)
    assert (mins[-1], maxs[-1]) == (2.0, 2.0)


def test_all_nan_bucket_and_infinity():
    s = MinMaxSeries()
    s.extend([1, 2, 3, 4], [math.nan, math.inf, 1.0, 2.0])
    steps, mins, maxs, mask = s.buckets(2)
    assert steps == [1, 3]
    assert math.isnan(mins[0]) and math.isnan(maxs[0]) and mask[0]
    assert (mins[1], maxs[1], mask[1]) == (1.0, 2.0, False)


def test_bad_arguments():
    s = MinMaxSeries()
    with pytest.raises(ValueError):
        s.extend([1, 2], [1.0])
    with pytest.raises(ValueError, match="n must be >= 1"):
        s.buckets(0)
    assert s.buckets(5) == ([], [], [], [])


def test_huge_finite_values_are_not_flagged_as_nan():
    # Their sum overflows to infinity; the values themselves are finite.
    for cap in (4, 16, 1024):
        s = MinMaxSeries(cap=cap)
        s.extend(list(range(1, 65)), [1e308] * 64)
        for i in range(65, 100):
            s.append(i, 1e308)
        _steps, mins, maxs, mask = s.buckets(8)
        assert mask and not any(mask) and set(mins) == set(maxs) == {1e308}


def test_arrays_in_short_runs_match_one_point_at_a_time():
    from array import array

    ys = [((i * 7919) % 101) / 10 for i in range(1, 3001)]
    ys[1234] = math.nan
    a, b = MinMaxSeries(cap=64), MinMaxSeries(cap=64)
    for i in range(0, 3000, 37):  # runs shorter than the bucket width later on
        xs = array("q", range(i + 1, min(i + 38, 3001)))
        a.extend(xs, array("d", ys[i : i + 37]))
    for i, y in enumerate(ys, start=1):
        b.append(i, y)
    # Batches or single points: the same coarse picture, and the same extremes and NaN at
    # every resolution (the buckets in memory may be cut at other steps).
    assert repr(a.buckets(5)) == repr(b.buckets(5))
    for n in (64, 3000):
        (sa, loa, hia, na), (sb, lob, hib, nb) = a.buckets(n), b.buckets(n)
        assert (min(loa), max(hia), sum(na)) == (min(lob), max(hib), sum(nb)) == (0.0, 10.0, 1)
        assert abs(sa[na.index(True)] - sb[nb.index(True)]) <= 3000 // 16


def test_memory_bounded_for_3_million_values():
    s = MinMaxSeries()
    rng = random.Random(3)
    step = 0
    for _ in range(100):
        xs = list(range(step + 1, step + 30_001))
        step += 30_000
        s.extend(xs, [rng.random() for _ in xs])
    s.append(step + 1, 99.0)
    assert len(s) == 3_000_001 and s.stored() <= s.cap
    steps, _mins, maxs, _mask = s.buckets(200)
    assert steps[0] == 1 and max(maxs) == 99.0


def test_live_following_keeps_one_resolution_over_the_whole_run():
    """Points arriving a few at a time (a run followed live) must not squeeze the early
    run into a few wide buckets (halving in place did: 75% of a run in one bucket)."""
    live, batch = MinMaxSeries(), MinMaxSeries()
    n = 100_000
    for k in range(0, n, 10):
        live.extend(list(range(k + 1, k + 11)), [1.0 + (k % 97)] * 10)
    batch.extend(list(range(1, n + 1)), [1.0 + ((x - 1) // 10 * 10 % 97) for x in range(1, n + 1)])
    widths = [b - a + 1 for seg in live.segments for a, b in zip(seg.x0, seg.x1, strict=True)]
    assert max(widths) <= live.width and live.stored() <= live.cap
    assert len(live.buckets(300)[0]) == 300
    assert live.buckets(300) == batch.buckets(300)


def test_endless_restarts_stay_bounded_and_never_hang():
    s = MinMaxSeries(cap=64)
    for r in range(5000):  # every batch goes back to step 1: a new segment each time
        s.extend([1, 2, 3], [1.0, float(r), 2.0])
    assert len(s.segments) <= 8 and s.stored() <= 64 and len(s) == 15_000
    _steps, _mins, maxs, _mask = s.buckets(10)
    assert max(maxs) == 4999.0


def test_truncate_forgets_later_points_in_every_segment():
    s = MinMaxSeries()
    s.extend(list(range(1, 101)), [1.0] * 100)
    s.extend([50, 51, 52], [9.0, 9.0, 9.0])  # backwards without a run_start: a 2nd segment
    s.truncate(40)
    assert len(s.segments) == 1 and s.last_step == 40 and len(s) == 40
    assert s.buckets(100)[2] == [1.0] * 40
    s.extend([41, 42], [2.0, 3.0])  # the new branch continues the same segment
    assert len(s.segments) == 1 and s.buckets(100)[2][-2:] == [2.0, 3.0]
    s.truncate(0)
    assert s.segments == [] and len(s) == 0 and s.buckets(10) == ([], [], [], [])


def test_truncate_of_coarse_buckets_keeps_the_straddling_one_and_stays_bounded():
    s = MinMaxSeries(cap=64)
    for k in range(50):  # 50 rollbacks of a 10,000-step run: memory stays within the cap
        s.extend(list(range(k * 100 + 1, 10_001)), [float(k)] * (10_000 - k * 100))
        s.truncate(k * 100 + 50)
        assert s.stored() <= 64 and s.last_step == k * 100 + 50
    steps, lo, hi, _ = s.buckets(64)
    assert steps[0] == 1 and s.segments[-1].x1[-1] == 4950
