"""The min/max band chart keeps spikes and NaNs visible however long the run is."""

from __future__ import annotations

import math

from nal_tui.core.reducer.series import MinMaxSeries
from nal_tui.ui.charts.chart import NAN_STYLE, Buckets, band_rows, to_buckets


def _cells(rows) -> list[str]:
    return [r.plain for r in rows]


def test_a_single_spike_in_a_long_run_stays_visible():
    s = MinMaxSeries()
    n = 200_000
    s.extend(list(range(1, n + 1)), [1.0 if i != 123_457 else 100.0 for i in range(1, n + 1)])
    b = to_buckets(s.buckets(2 * 40))
    rows = band_rows(b, 40, 4)
    top = _cells(rows)[0]
    # The spike reaches the top row in exactly the column holding step 123,457.
    assert sum(1 for ch in top if ch.strip() and ch != "\u2800") >= 1
    assert max(b.maxs) == 100.0


def test_nan_bucket_is_drawn_in_its_own_style():
    s = MinMaxSeries()
    ys = [1.0] * 1000
    ys[500] = math.nan
    s.extend(list(range(1, 1001)), ys)
    b = to_buckets(s.buckets(20))
    assert any(b.nan)
    rows = band_rows(b, 10, 3)
    styles = {str(span.style) for r in rows for span in r.spans}
    assert NAN_STYLE in styles


def test_empty_series_says_no_data():
    rows = band_rows(Buckets(), 20, 3)
    assert "no data yet" in "".join(_cells(rows))


def test_log_scale_and_smoothing_render_the_same_size():
    b = Buckets([1, 2, 3, 4], [1.0, 10.0, 100.0, 0.0], [1.0, 10.0, 100.0, 0.0], [False] * 4)
    for kw in ({"log": True}, {"smooth": True}, {"log": True, "smooth": True}):
        rows = band_rows(b, 12, 5, **kw)
        assert len(rows) == 5 and all(len(r.plain) == 12 for r in rows)
