"""Quality over time (the validation chart's data): every metric of every set as a series,
each series' current/min/max/best with steps, over-training spans, cut by a branch."""

from __future__ import annotations

import math

from nal_tui.core.reducer.quality import QualityHistory, overtraining_spans, series_stats
from nal_tui.core.reducer.state import RunState
from tests.factory import records, run_start, steps, val_record


def test_stats_name_current_extremes_and_best_with_their_steps() -> None:
    st = series_stats([100, 200, 300, 400], [0.9, 0.4, math.nan, 0.6])
    assert (st.current, st.current_step) == (0.6, 400)
    assert (st.min, st.min_step, st.max, st.max_step) == (0.4, 200, 0.9, 100)
    assert (st.best, st.best_step) == (0.4, 200)  # lower is better by default
    up = series_stats([100, 200], [2.1, 3.0], higher_is_better=True)
    assert (up.best, up.best_step) == (3.0, 200)
    empty = series_stats([], [])
    assert empty.current is None and empty.best_step is None


def test_history_keeps_every_metric_of_every_set_in_order() -> None:
    h = QualityHistory()
    h.add(val_record(100, set="unseen", metrics={"mel_l1": 1.1, "pesq": 1.2, "zeta": 5}))
    h.add(val_record(100, set="val", metrics={"mel_l1": 0.9, "pesq": 1.5}))
    h.add(val_record(200, set="val", metrics={"mel_l1": 0.5, "pesq": "nan"}))
    h.add(val_record(200, set="val", metrics={"mel_l1": 0.45, "pesq": 2.0}))  # same step: newest
    assert h.metrics() == ["mel_l1", "pesq", "zeta"]
    assert h.sets("mel_l1") == ["val", "unseen"]
    assert list(h.points("val", "mel_l1")[0]) == [100, 200]
    assert list(h.points("val", "mel_l1")[1]) == [0.9, 0.45]
    pesq = h.stats("val", "pesq")
    assert pesq.higher_is_better and (pesq.best, pesq.best_step) == (2.0, 200)
    # A record without metrics (an older writer): its losses are the series.
    old = QualityHistory()
    old.add(val_record(50, losses={"mel_l1": 0.7, "mrstft": 2.0}))
    assert old.metrics() == ["mel_l1", "mrstft"]


def test_overtraining_is_shaded_from_the_best_validation_to_the_alert() -> None:
    s, v = [100, 200, 300, 400, 500, 600], [0.9, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert overtraining_spans([400], s, v, False) == [(200, 400)]
    assert overtraining_spans([400, 600], s, v, False) == [(200, 600)]  # merged
    assert overtraining_spans([], s, v, False) == []


def test_the_reducer_fills_the_history_and_a_branch_cuts_it() -> None:
    st = RunState()
    evs = [run_start(), *steps(1, 300)]
    st.feed(records(evs))
    for step in (100, 200, 300):
        st.feed([val_record(step, metrics={"mel_l1": 1.0 / step})])
    hist = st.validation.history
    assert list(hist.points("val", "mel_l1")[0]) == [100, 200, 300]
    st.feed(records([run_start(start=150), *steps(151, 160)]))  # a resume from step 150
    assert list(hist.points("val", "mel_l1")[0]) == [100]
    assert hist.stats("val", "mel_l1").current_step == 100


def test_loss_series_extremes_name_their_steps_exactly_while_buckets_are_one_step() -> None:
    from nal_tui.core.reducer.series import MinMaxSeries

    s = MinMaxSeries(cap=8)
    assert s.extremes() is None
    s.extend([1, 2, 3, 4], [5.0, math.nan, 0.5, 9.0])
    assert s.extremes() == (0.5, 3, 9.0, 4) and s.width == 1
    s.extend(list(range(5, 40)), [2.0] * 35)  # more than the cap: buckets widen
    lo, lo_s, hi, hi_s = s.extremes()
    assert (lo, hi) == (0.5, 9.0) and lo_s <= 3 < lo_s + s.width and hi_s <= 4 < hi_s + s.width
