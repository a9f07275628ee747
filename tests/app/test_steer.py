"""Steering the charts under Pilot: series keys on a real trainer's run, zoom / pan /
follow on a long run as it appends, smoothing and log scale remembered across restarts,
and snapshots of a steered chart at 80x24, 120x40 and 160x45."""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import pytest

from nal_tui.core import chartprefs as cp
from nal_tui.ui.charts.chart import BigChart
from nal_tui.ui.charts.range import RangeScreen
from tests.app.apphelp import make_app, screen_text, svg_text, until
from tests.app.test_samples import sync
from tests.app.test_snapshots import utc  # noqa: F401 - autouse: times print in UTC
from tests.factory import DEMO_CONFIG, T0, run_start, step_event, tree_digest, write_events
from trainer.rundir.layout import EVENTS

STEPS = 30_000


def _rows(first: int, last: int) -> list:
    """Steps with a falling G loss, noisy gradient norms (G spikes x10 at 24,000) and a
    learning rate that decays."""
    return [
        step_event(s, g=40 + 10 * math.exp(-s / 8000) + (s % 37) / 37,
                   grad_norm_g=2.0 + (s % 11) / 11 + (25.0 if s == 24_000 else 0.0),
                   grad_norm_d=0.5 + (s % 7) / 14, lr_g=2e-4 * 0.999 ** (s // 1000))
        for s in range(first, last + 1)
    ]  # fmt: skip


def _long_run(tmp_path: Path) -> Path:
    rd = tmp_path / "logs" / "steer"
    rd.mkdir(parents=True)
    (rd / "config.yaml").write_text(DEMO_CONFIG.read_text())
    evs = [run_start(target=40_000, run_name="steer", milestone_every=0), *_rows(1, STEPS)]
    write_events(rd / EVENTS, evs, T0, 0.1)
    return rd


def _copy(sampled_run: Path, tmp_path: Path) -> Path:
    rd = tmp_path / "logs" / "demo"
    shutil.copytree(sampled_run, rd)
    return rd


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_series_keys_chart_lr_and_gradient_norms_of_a_real_run(sampled_run, tmp_path):
    rd = _copy(sampled_run, tmp_path)
    app = make_app(rd, tmp_path / "logs")
    async with app.run_test(size=(160, 45)) as pilot:
        assert await until(pilot, lambda: app.settled and app.state.step == 4)
        big = app.query_one(BigChart)
        await pilot.press("6")
        assert await until(pilot, lambda: "lr G · whole run" in str(big.border_title))
        assert big.series is app.state.opt["lr_g"].series and len(big.series) == 4
        text = screen_text(pilot)
        assert "Optimiser: lr, grad norms" in text and "grad norm D" in text
        await pilot.press("9")
        assert "grad norm D" in str(big.border_title)
        gn = app.state.opt["grad_norm_d"]
        assert len(gn.series) == 4 and gn.current is not None and gn.current > 0
        await pilot.press("tab")  # from the last series round to the first
        assert "G total" in str(big.border_title)
        assert await until(pilot, lambda: "Losses" in screen_text(pilot))


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_smoothing_and_log_scale_are_remembered_for_the_run(sampled_run, tmp_path):
    rd = _copy(sampled_run, tmp_path)
    before = tree_digest(rd)
    app = make_app(rd, tmp_path / "logs")
    async with app.run_test(size=(160, 45)) as pilot:
        assert await until(pilot, lambda: app.settled)
        await pilot.press("m", "m", "l")
        big = app.query_one(BigChart)
        assert big.weight == 0.8 and big.log_scale
    assert cp.load_prefs(rd) == (cp.ChartPrefs(log=True, weight=0.8), None)
    assert tree_digest(rd) == before  # nothing written into the run dir
    again = make_app(rd, tmp_path / "logs")  # a restarted nal-tui
    async with again.run_test(size=(160, 45)) as pilot:
        assert await until(pilot, lambda: again.settled)
        big = again.query_one(BigChart)
        assert big.weight == 0.8 and big.log_scale
        assert "smooth 0.8" in str(big.border_subtitle)
        await pilot.press("M", "M", "M")
        assert big.weight == 0.0 and "smooth off" in str(big.border_subtitle)
    assert cp.load_prefs(rd)[0].weight == 0.0


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_a_corrupt_settings_file_is_said_once_and_ignored(sampled_run, tmp_path):
    rd = _copy(sampled_run, tmp_path)
    path = cp.prefs_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"version": 1, "runs": ')
    app = make_app(rd, tmp_path / "logs")
    async with app.run_test(size=(120, 40)) as pilot:
        # Said when the run opens (a toast, shown for 20 s).
        def said() -> list[str]:
            return [n.message for n in app._notifications if "chart settings" in n.message]

        assert await until(pilot, lambda: bool(said()))
        assert "ignored" in said()[0] and "\n" not in said()[0]
        assert await until(pilot, lambda: app.settled)
        assert app.query_one(BigChart).weight == 0.0
        await pilot.press("l")  # the next change writes a sound file
    assert cp.load_prefs(rd) == (cp.ChartPrefs(log=True), None)


@sync
async def test_zoom_pan_and_follow_while_the_run_appends(tmp_path):
    rd = _long_run(tmp_path)
    app = make_app(rd, tmp_path / "logs")
    async with app.run_test(size=(160, 45)) as pilot:
        assert await until(pilot, lambda: app.settled and app.state.step == STEPS, 120)
        big = app.query_one(BigChart)
        await pilot.press("z")
        assert big.window == (STEPS - 999, STEPS)
        assert "G total · last 1k · following" in str(big.border_title)
        write_events(rd / EVENTS, _rows(STEPS + 1, STEPS + 200), time.time(), 0.01)
        end = STEPS + 200
        assert await until(pilot, lambda: big.window == (end - 999, end))  # it follows
        # Drawn from there (the stored buckets are a few steps wide at this length).
        assert await until(pilot, lambda: end - 999 <= big.last_buckets.steps[0] < end - 980)
        await pilot.press("left_square_bracket")
        assert big.window == (end - 1499, end - 500)
        assert "steps 28.7k–29.7k" in str(big.border_title)
        assert "f follow" in str(big.border_subtitle)
        assert await until(pilot, lambda: "steps 28.7k–29.7k" in screen_text(pilot))
        write_events(rd / EVENTS, _rows(end + 1, end + 100), time.time(), 0.01)
        assert await until(pilot, lambda: app.state.step == end + 100)
        await pilot.press("z")  # 10k, still panned: the same end step
        assert big.window == (end - 500 - 9999, end - 500)
        await pilot.press("f")
        assert big.window == (end + 100 - 9999, end + 100)
        assert "last 10k · following" in str(big.border_title)
        await pilot.press("z", "z")  # 100k (the whole of this run), then the whole run
        assert big.window is None and "whole run" in str(big.border_title)
        await pilot.press("Z")  # a range typed in
        assert await until(pilot, lambda: isinstance(app.screen, RangeScreen))
        await pilot.press(*"28k-29.5k", "enter")
        assert await until(pilot, lambda: big.window == (28_000, 29_500))
        assert "steps 28k–29.5k" in str(big.border_title)
        await pilot.press("Z", *"oops", "enter")
        assert await until(pilot, lambda: "not a range" in screen_text(pilot))
        await pilot.press("escape")
        assert await until(pilot, lambda: not isinstance(app.screen, RangeScreen))
        assert big.window == (28_000, 29_500)


@sync
async def test_zoom_applies_to_the_losses_panel_at_80x24(tmp_path):
    rd = _long_run(tmp_path)
    app = make_app(rd, tmp_path / "logs")
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.settled and app.state.step == STEPS, 120)
        await pilot.press("z", "z", "8")
        text = screen_text(pilot)
        assert "last 10k · following" in text and "grad norm G" in text, text
        assert "m Smooth" not in text and "l Log" not in text  # the footer fits at 80


SIZES = [(80, 24), (120, 40), (160, 45)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_steered_chart_snapshot(snap_compare, tmp_path, size):
    """Grad norm G, the last 10k steps panned back by half, smoothing 0.8, at each size."""
    app = make_app(_long_run(tmp_path), tmp_path / "logs", frozen=True)
    shots: list[str] = []

    async def before(pilot):
        assert await until(pilot, lambda: app.settled and app.state.step == STEPS, 120)
        await pilot.press("8")  # the optimiser's series are built on first selection
        big = app.query_one(BigChart)
        assert await until(pilot, lambda: "grad norm G" in str(big.border_title), 60)
        await pilot.press("z", "z", "left_square_bracket", "m", "m")
        assert await until(pilot, lambda: app.settled, 30)
        await pilot.wait_for_scheduled_animations()
        shots.append(app.export_screenshot())

    assert snap_compare(app, terminal_size=size, run_before=before)
    text = svg_text(shots[-1])
    assert "steps 15k–25k" in text and "grad norm G" in text, text
    assert "grad_spike" in text, text  # the spike at 24,000 is an alert
    if size != (80, 24):
        assert "smooth 0.8" in text, text
    assert os.environ["NAL_STATE_DIR"]  # the settings went to the test's own state dir
