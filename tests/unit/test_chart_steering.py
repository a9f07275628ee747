"""Steering a chart: TensorBoard's smoothing, zoom/pan windows, the remembered settings."""

from __future__ import annotations

import json
import math
import os

import pytest

from nal_tui.core import chartprefs as cp
from nal_tui.core.reducer.chartview import (
    SMOOTH_WEIGHTS,
    ChartView,
    ema,
    fmt_steps,
    parse_range,
    step_weight,
)


def test_ema_is_tensorboards_debiased_ema():
    # By hand, weight 0.6: last = 0.6*last + 0.4*v, shown = last / (1 - 0.6**n).
    # v=1: last 0.4, /0.4 -> 1.0; v=2: last 0.24+0.8=1.04, /0.64 -> 1.625;
    # v=4: last 0.624+1.6=2.224, /0.784 -> 2.836734...
    assert ema([1.0, 2.0, 4.0], 0.6) == pytest.approx([1.0, 1.625, 2.224 / 0.784])
    assert ema([3.0, 5.0], 0.0) == [3.0, 5.0]  # weight 0: the raw series


def test_ema_passes_non_finite_values_through_and_keeps_a_flat_line():
    out = ema([1.0, math.nan, 3.0], 0.5)
    # NaN is not averaged in: the second finite value is the EMA's second point.
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == pytest.approx(1.75 / 0.75)
    assert ema([2.5, 2.5, 2.5], 0.9) == [2.5, 2.5, 2.5]
    with pytest.raises(ValueError):
        ema([1.0], 1.0)


def test_step_weight_walks_the_weights_and_holds_at_the_ends():
    assert step_weight(0.6, 1) == 0.8 and step_weight(0.6, -1) == 0.0
    assert step_weight(0.0, -1) == 0.0 and step_weight(0.99, 1) == 0.99
    assert step_weight(0.61, 1) == 0.8  # a weight between steps snaps to the nearest
    assert SMOOTH_WEIGHTS == (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)


def test_zoom_follows_the_tail_by_default():
    v = ChartView()
    assert v.window(1, 500_000) is None and v.label(1, 500_000) == "whole run"
    v.cycle_zoom(500_000)
    assert v.span == 1000 and v.window(1, 500_000) == (499_001, 500_000)
    assert v.window(1, 600_000) == (599_001, 600_000)  # the run appends: it follows
    assert v.label(1, 600_000) == "last 1k · following"
    v.cycle_zoom(600_000), v.cycle_zoom(600_000), v.cycle_zoom(600_000)
    assert v.span is None  # 10k, 100k, then the whole run again
    v.cycle_zoom(600_000)
    assert v.window(1, 300) == (1, 300)  # a run shorter than the span shows whole


def test_pan_leaves_follow_mode_and_the_view_stays_put_while_the_run_appends():
    v = ChartView(span=10_000)
    v.pan(-1, 1, 130_000)
    assert not v.follow and v.window(1, 130_000) == (115_001, 125_000)
    assert v.window(1, 200_000) == (115_001, 125_000)  # stays put as the run appends
    assert v.label(1, 200_000) == "steps 115k–125k"
    v.pan(-1, 1, 200_000)
    assert v.window(1, 200_000) == (110_001, 120_000)
    for _ in range(100):
        v.pan(-1, 1, 200_000)
    assert v.window(1, 200_000) == (1, 10_000)  # held at the run's first step
    v.pan(1, 1, 200_000)
    assert v.window(1, 200_000) == (5001, 15_000)
    v.follow_tail()
    assert v.follow and v.window(1, 200_000) == (190_001, 200_000)


def test_pan_forward_to_the_end_follows_again_and_whole_run_pans_by_halving():
    v = ChartView(span=1000)
    v.pan(-1, 1, 10_000)
    v.pan(1, 1, 10_000)
    assert v.follow and v.window(1, 10_000) == (9001, 10_000)
    w = ChartView()
    w.pan(-1, 1, 10_000)  # from the whole run: its last half, moved back by half that
    assert not w.follow and w.window(1, 10_000) == (2501, 7500)


def test_a_typed_range_is_held_and_pans_like_any_view():
    assert parse_range("120000-130000") == (120_000, 130_000)
    assert parse_range(" 120k – 130k ") == (120_000, 130_000)
    assert parse_range("1.5M..2m") == (1_500_000, 2_000_000)
    assert parse_range("1,000 to 2,000") == (1000, 2000)
    for bad in ("", "5k", "130k-120k", "a-b", "10-10", "-5-10"):
        assert parse_range(bad) is None, bad
    v = ChartView()
    v.show_range(120_000, 130_000)
    assert v.window(1, 500_000) == (120_000, 130_000) and v.label(1, 500_000) == "steps 120k–130k"
    assert v.window(1, 600_000) == (120_000, 130_000)  # held while the run appends
    v.pan(1, 1, 600_000)
    assert v.window(1, 600_000) == (125_000, 135_000)
    v.cycle_zoom(600_000)  # back to the zoom levels (1k), still panned at its end step
    assert v.window(1, 600_000) == (134_001, 135_000)


def test_fmt_steps():
    assert [fmt_steps(n) for n in (950, 1000, 1500, 120_000, 2_500_000)] == [
        "950", "1k", "1.5k", "120k", "2.5M",
    ]  # fmt: skip


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    d = tmp_path / "state"
    monkeypatch.setenv(cp.STATE_DIR_ENV, str(d))
    return d


def test_prefs_round_trip_by_resolved_run_dir_and_not_in_the_run_dir(tmp_path, state_dir):
    run = tmp_path / "logs" / "run"
    run.mkdir(parents=True)
    assert cp.load_prefs(run) == (cp.ChartPrefs(), None)  # nothing remembered: defaults
    assert cp.save_prefs(run, cp.ChartPrefs(log=True, weight=0.95)) is None
    other = tmp_path / "logs" / ".." / "logs" / "run"  # the same directory, another spelling
    assert cp.load_prefs(other) == (cp.ChartPrefs(log=True, weight=0.95), None)
    assert cp.prefs_path().parent == state_dir and list(run.iterdir()) == []
    cp.save_prefs(tmp_path, cp.ChartPrefs(weight=0.0))
    data = json.loads(cp.prefs_path().read_text())
    assert data["version"] == cp.PREFS_VERSION and len(data["runs"]) == 2
    assert cp.load_prefs(run)[0].weight == 0.95  # another run's settings leave it alone


@pytest.mark.parametrize(
    "text", ["{not json", "[]", '{"version": 99, "runs": {}}', '{"version": 1, "runs": []}', "\xff"]
)
def test_a_corrupt_prefs_file_is_ignored_with_one_line(tmp_path, state_dir, text):
    state_dir.mkdir()
    cp.prefs_path().write_bytes(text.encode("latin-1"))
    prefs, msg = cp.load_prefs(tmp_path)
    assert prefs == cp.ChartPrefs() and msg is not None and "\n" not in msg
    assert "ignored" in msg and str(cp.prefs_path()) in msg
    assert cp.save_prefs(tmp_path, cp.ChartPrefs(log=True)) is None  # replaced by a sound one
    assert cp.load_prefs(tmp_path) == (cp.ChartPrefs(log=True), None)


def test_odd_values_in_the_prefs_file_fall_back_to_defaults(tmp_path, state_dir):
    state_dir.mkdir()
    key = str(tmp_path.resolve())
    cp.prefs_path().write_text(
        json.dumps({"version": 1, "runs": {key: {"log": "yes", "weight": 0.42}}})
    )
    assert cp.load_prefs(tmp_path) == (cp.ChartPrefs(), None)


def test_prefs_are_written_atomically(tmp_path, state_dir, monkeypatch):
    cp.save_prefs(tmp_path, cp.ChartPrefs(log=True))
    before = cp.prefs_path().read_bytes()
    real = os.replace

    def torn(src, dst):  # the process dies between writing the temp file and the rename
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", torn)
    msg = cp.save_prefs(tmp_path, cp.ChartPrefs(log=False, weight=0.99))
    monkeypatch.setattr(os, "replace", real)
    assert msg is not None and "not saved" in msg
    assert cp.prefs_path().read_bytes() == before  # the old file, whole
    assert [p.name for p in state_dir.iterdir()] == [cp.PREFS_FILE]  # no temp file left


def test_state_dir_defaults_to_the_user_state_dir(monkeypatch):
    monkeypatch.delenv(cp.STATE_DIR_ENV, raising=False)
    from platformdirs import user_state_path

    assert cp.state_dir() == user_state_path("naudiolab")
