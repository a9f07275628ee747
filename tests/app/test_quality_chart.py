"""The validation chart (key ``g``): on a real run made by the trainer (Pilot: the metric's
points, the stats line, Enter opening that validation's samples), and as SVG snapshots at
80x24, 120x40 and 160x45 with two sets, best checkpoints and an over-training span."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nal_tui.ui.quality.screen import QualityScreen
from nal_tui.ui.samples.screen import SamplesScreen
from tests.app.apphelp import make_app, screen_text, svg_text, until
from tests.app.test_samples import sync, utc  # noqa: F401 (the fixture is used by name)
from tests.factory import T0, checkpoint_record, record, val_record, write_run
from trainer.events import schema as ev
from trainer.events.codec import encode


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_g_charts_the_runs_validations_and_enter_opens_the_samples(
    sampled_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "logs" / "demo"
    shutil.copytree(sampled_run, run)
    app = make_app(run, run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: not app.feeds.loading and app.state.step == 4, 60)
        await pilot.press("g")
        assert await until(pilot, lambda: isinstance(app.screen, QualityScreen), 30)
        await pilot.pause()
        text = screen_text(pilot)
        assert "mel_l1 (lower is better) · metric 1/1" in text
        steps, vals = app.state.validation.history.points("val", "mel_l1")
        assert list(steps) == [2, 4]
        best = min(vals)
        assert f"best {best:.4g} @{steps[list(vals).index(best)]}" in text
        assert "◆ step 4:" in text
        await pilot.press("left")
        await pilot.pause()
        assert "◆ step 2:" in screen_text(pilot)
        await pilot.press("enter")
        assert await until(pilot, lambda: isinstance(app.screen, SamplesScreen), 30)
        await pilot.pause()
        assert "samples · step 2 (1/2)" in screen_text(pilot)


def _quality_run(tmp_path: Path) -> Path:
    rd = write_run(tmp_path / "logs" / "demo", 1000, checkpoints=(1000,), t0=T0, dt=1.0)
    for p in (rd / "checkpoints").glob("*.json"):
        p.write_text(p.read_text().replace('"created": ', '"created": 1700000000.0, "x": '))
    recs = []
    mel = [0.9, 0.7, 0.55, 0.5, 0.48, 0.5, 0.53, 0.56, 0.6, 0.62]
    for i, m in enumerate(mel):
        step = 100 * (i + 1)
        recs.append(val_record(step, set="unseen", t=T0 + step,
                               metrics={"mel_l1": m + 0.2, "pesq": 1.5 + i / 10}))  # fmt: skip
        recs.append(val_record(step, set="val", t=T0 + step,
                               metrics={"mel_l1": m, "pesq": 2.0 + i / 10}))  # fmt: skip
    recs.append(checkpoint_record(500, best=True, best_steps=[500, 400], t=T0 + 500))
    recs.append(record(ev.Alert(kind=ev.ALERT_OVERTRAINING, step=800,
                                message="mel_l1 has not improved since step 500"), T0 + 800))  # fmt: skip
    with open(rd / "events.jsonl", "ab") as f:
        for r in recs:
            f.write(encode(r))
    return rd


SIZES = [(80, 24), (120, 40), (160, 45)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_quality_chart_snapshot(snap_compare, tmp_path, size):
    app = make_app(_quality_run(tmp_path), tmp_path / "logs", frozen=True)
    shots: list[str] = []

    async def before(pilot):
        assert await until(pilot, lambda: app.settled and app.state.step == 1000, 120)
        await pilot.press("g")
        assert await until(pilot, lambda: isinstance(app.screen, QualityScreen), 30)
        await pilot.pause()
        shots.append(app.export_screenshot())

    assert snap_compare(app, terminal_size=size, run_before=before)
    text = svg_text(shots[-1])
    assert "━ val" in text and "━ unseen" in text and "over-training" in text
    assert "val      now 0.62 @1,000 min 0.48 @500 max 0.9 @100 best 0.48 @500" in text
