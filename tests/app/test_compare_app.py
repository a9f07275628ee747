"""``nal-tui compare``: two real runs made by the trainer (Pilot: legend, best scores,
config diff, the A/B samples view across the runs), and SVG snapshots at 80x24, 120x40
and 160x45 of two runs written by the factory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nal_tui.core.compare.runs import load_runs
from nal_tui.ui.compare.app import CompareApp
from nal_tui.ui.samples.screen import SamplesScreen
from tests.app.apphelp import screen_text, svg_text, until
from tests.app.test_samples import sync
from tests.factory import run_start, step_event, val_record, write_events, write_run
from trainer.events.codec import encode


def _two(sampled_run: Path, tmp_path: Path) -> list[Path]:
    a, b = tmp_path / "logs" / "lr2e-4", tmp_path / "logs" / "lr1e-4"
    shutil.copytree(sampled_run, a)
    shutil.copytree(sampled_run, b)
    cfg = b / "config.yaml"
    cfg.write_text(cfg.read_text().replace("lr_g: 0.0002", "lr_g: 0.0001"))
    return [a, b]


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_compare_two_real_runs(sampled_run: Path, tmp_path: Path) -> None:
    runs = _two(sampled_run, tmp_path)
    app = CompareApp(load_runs(runs))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = screen_text(pilot)
        assert "compare · 2 runs · validation mel L1 distance" in text
        assert "━ lr2e-4" in text and "━ lr1e-4" in text
        assert "optim.lr_g" in text and "0.0002" in text and "0.0001" in text
        assert text.count("@4") >= 2 or text.count("@2") >= 2  # each run's best and its step
        await pilot.press("down")
        await pilot.pause()
        assert "loss G total (2/10)" in screen_text(pilot)
        await pilot.press("v")
        assert await until(pilot, lambda: isinstance(app.screen, SamplesScreen), 30)
        await pilot.pause()
        text = screen_text(pilot)
        assert "samples · lr2e-4 · step 4" in text and "▼ B: lr1e-4 · step 4" in text


def _factory_runs(tmp_path: Path) -> list[Path]:
    out = []
    for name, lr, curve in (
        ("base", "0.0002", (0.9, 0.6, 0.5)),
        ("lowlr", "0.0001", (0.95, 0.8, 0.7)),
    ):
        rd = write_run(tmp_path / "logs" / name, 300)
        cfg = rd / "config.yaml"
        cfg.write_text(cfg.read_text().replace("lr_g: 2.0e-4", f"lr_g: {lr}"))
        with open(rd / "events.jsonl", "ab") as f:
            for i, m in enumerate(curve):
                f.write(encode(val_record(100 * (i + 1), set="val", metrics={"mel_l1": m})))
        out.append(rd)
    return out


SIZES = [(80, 24), (120, 40), (160, 45)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_compare_snapshot(snap_compare, tmp_path, size):
    app = CompareApp(load_runs(_factory_runs(tmp_path)))
    shots: list[str] = []

    async def before(pilot):
        await pilot.pause()
        shots.append(app.export_screenshot())

    assert snap_compare(app, terminal_size=size, run_before=before)
    text = svg_text(shots[-1])
    assert "━ base" in text and "━ lowlr" in text
    assert "0.5 @300" in text and "0.7 @300" in text and "optim.lr_g" in text


def _timed_runs(tmp_path: Path) -> list[Path]:
    """Two runs of 300 steps, one logging a step a second and one every two seconds."""
    out = []
    for name, dt in (("fast", 1.0), ("slow", 2.0)):
        rd = write_run(tmp_path / "logs" / name, 300, dt=dt)
        with open(rd / "events.jsonl", "ab") as f:
            for i, m in enumerate((0.9, 0.6, 0.5)):
                f.write(encode(val_record(100 * (i + 1), set="val", metrics={"mel_l1": m})))
        out.append(rd)
    return out


@sync
async def test_t_toggles_the_x_axis_between_step_and_time(tmp_path: Path) -> None:
    app = CompareApp(load_runs(_timed_runs(tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = screen_text(pilot)
        assert "· against step" in text and "step 100" in text and "300" in text
        await pilot.press("t")
        await pilot.pause()
        text = screen_text(pilot)
        # validations at steps 100..300: 100 s..300 s into the fast run, 200 s..600 s into
        # the slow one (the run_start is the first record, each step row dt after the last)
        assert "· against wall-clock time" in text
        assert "time since start 1m40s" in text and "10m00s" in text
        assert "t x axis: step" in text
        await pilot.press("down")  # a loss: its buckets' steps on the same clock
        await pilot.pause()
        assert "time since start" in screen_text(pilot)
        await pilot.press("t")
        await pilot.pause()
        text = screen_text(pilot)
        assert "· against step" in text and "time since start" not in text


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_compare_time_axis_snapshot(snap_compare, tmp_path, size):
    app = CompareApp(load_runs(_timed_runs(tmp_path)))
    shots: list[str] = []

    async def before(pilot):
        await pilot.press("t")
        await pilot.pause()
        shots.append(app.export_screenshot())

    assert snap_compare(app, terminal_size=size, run_before=before)
    text = svg_text(shots[-1])
    assert "against wall-clock time" in text and "time since start 1m40s" in text


def _lr_runs(tmp_path: Path) -> list[Path]:
    """Two runs whose learning rate G and gradient norm G differ (1e-3 vs 5e-4; 2 vs 8)."""
    out = []
    for name, lr, gn in (("hi", 1e-3, 2.0), ("lo", 5e-4, 8.0)):
        rd = tmp_path / "logs" / name
        evs = [run_start(target=1000, run_name=name, milestone_every=0)]
        evs += [step_event(s, lr_g=lr, grad_norm_g=gn, grad_norm_d=1.0) for s in range(1, 301)]
        write_events(rd / "events.jsonl", evs)
        out.append(rd)
    return out


@sync
async def test_learning_rates_and_gradient_norms_are_compared(tmp_path: Path) -> None:
    runs = load_runs(_lr_runs(tmp_path))
    assert not runs[0].state.track("lr_g").ready  # built when first shown, off the UI thread
    app = CompareApp(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "loss G total (1/9)" in screen_text(pilot)  # no validation: the losses come first
        await pilot.press(*["down"] * 5)
        assert await until(pilot, lambda: "optimiser lr G (6/9)" in screen_text(pilot))
        assert await until(pilot, lambda: app.screen.building == 0)
        await pilot.pause()
        text = screen_text(pilot)
        assert all(r.state.track("lr_g").ready for r in runs)
        assert "0.001" in text and "5.00e-04" in text  # the y axis spans both runs' rates
        assert "━ hi" in text and "━ lo" in text
        await pilot.press("down", "down")
        assert await until(pilot, lambda: "optimiser grad norm G (8/9)" in screen_text(pilot))
        assert await until(pilot, lambda: app.screen.building == 0)
        await pilot.pause()
        text = screen_text(pilot)
        labels = [ln.split()[0] for ln in text.splitlines() if ln.startswith("    ")]
        assert "8" in labels and "2" in labels  # the y axis: the norms 8 (lo) and 2 (hi)
        await pilot.press("down")
        assert await until(pilot, lambda: "optimiser grad norm D (9/9)" in screen_text(pilot))
