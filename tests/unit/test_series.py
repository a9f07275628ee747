"""Min/max series: bounded memory, every spike and NaN visible at any bucket count."""

from __future__ import annotations

import math
import random

import pytest

from nal_tui.core.series import MinMaxSeries


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
