"""The dashboard's keys and screens under Pilot on real run directories (ported from main's
test_app and test_header): what a user sees after each key."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nal_tui.core.reducer.views import HeaderView
from nal_tui.ui.charts.chart import BigChart
from nal_tui.ui.checkpoints.table import CheckpointTable
from nal_tui.ui.help import HelpScreen
from nal_tui.ui.keys import BINDINGS, EXTRA_KEYS, key_help
from nal_tui.ui.launch.confirm import ResumeScreen, StartScreen
from nal_tui.ui.run.header import header_parts
from nal_tui.ui.runs.picker import RunPickerScreen
from nal_tui.ui.widgets.fit import fit_parts
from tests.app.apphelp import make_app, screen_text, until
from tests.factory import DEMO_CONFIG, T0, corrupt, step_event, write_checkpoint, write_run
from trainer.events import schema as ev
from trainer.events.writer import EventWriter

SIZE = (160, 50)


def run(coro) -> None:
    asyncio.run(coro)


async def until_text(pilot, text: str, timeout: float = 30.0) -> bool:
    return await until(pilot, lambda: text in screen_text(pilot), timeout)


def test_opens_run_and_shows_header_progress_and_losses(tmp_path):
    rd = write_run(tmp_path / "logs" / "demo", 250, target=1000, name="demo", end="stopped")

    async def go():
        app = make_app(rd, tmp_path / "logs")
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "step 250/1,000")
            text = screen_text(pilot)
            assert "demo" in text and "STOPPED" in text
            assert "25.0%" in text  # progress percent
            assert "recon (mrstft)" in text and "feat. match" in text
            assert "47.5" in text  # G's current value at step 250 (50 - 250 * 0.01)
            assert "●        200" in text  # milestone at step 200 reached

    run(go())


def test_no_argument_opens_the_most_recent_run(tmp_path):
    from nal_tui.core.control.session import RunSession
    from nal_tui.ui.app import NalTuiApp

    logs = tmp_path / "logs"
    write_run(logs / "older", 10, name="older", end="completed")
    write_run(logs / "newer", 20, name="newer", end="stopped")

    async def go():
        app = NalTuiApp(RunSession.open(None, logs), config_path=DEMO_CONFIG, build_models=False)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "newer")
            assert app.run_dir == logs / "newer"

    run(go())


def test_help_lists_every_key(tmp_path):
    rd = write_run(tmp_path / "run", 5)

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            assert await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            text = screen_text(pilot)
            keys = key_help(BINDINGS) + EXTRA_KEYS
            for key, desc in keys:
                assert key in text and desc[:30] in text, (key, desc)
            needs = ("Ctrl+C", "?", "s", "x", "r", "o", "1-9", "Tab / Shift+Tab", "z", "[ / ]", "f",
                     "m / M", "l", "b")  # fmt: skip
            for needed in needs:
                assert any(k == needed for k, _ in keys), needed
            await pilot.press("escape")
            assert await until(pilot, lambda: not isinstance(app.screen, HelpScreen))

    run(go())


def test_help_at_80x24_lists_no_big_chart_keys(tmp_path):
    """The compact layout has no big chart: its help does not offer the chart's own keys
    (smoothing, log); zoom, pan and the series keys steer the losses panel there."""
    rd = write_run(tmp_path / "run", 5)

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            assert await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            shown = {k for k, _ in app.screen.keys}
            assert not shown & {"m / M", "l"}, shown
            assert {"?", "s", "x", "r", "o", "b", "Ctrl+C"} <= shown
            assert {"1-9", "Tab / Shift+Tab", "z", "[ / ]", "f"} <= shown, shown
            assert "big chart" not in " ".join(d for _, d in app.screen.keys)

    run(go())


def test_select_loss_and_toggle_smoothing_and_log_scale(tmp_path):
    rd = write_run(tmp_path / "run", 120)

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "step 120")
            big = app.query_one(BigChart)
            assert await until(pilot, lambda: "G total · whole run" in str(big.border_title))
            await pilot.press("3")
            assert "recon (mrstft) · whole run" in str(big.border_title)
            assert big.series is app.state.losses["stft"].series
            await pilot.press("tab")
            assert "adversarial · whole run" in str(big.border_title)
            await pilot.press("shift+tab", "shift+tab")
            assert "D total · whole run" in str(big.border_title)
            assert "smooth off" in str(big.border_subtitle)
            await pilot.press("m", "l")
            assert "smooth 0.6" in str(big.border_subtitle)
            assert "log on" in str(big.border_subtitle)
            assert big.smooth and big.weight == 0.6 and big.log_scale
            await pilot.press("m", "m", "M")
            assert big.weight == 0.8 and "smooth 0.8" in str(big.border_subtitle)
            await pilot.press("l")
            assert not big.log_scale and "log off" in str(big.border_subtitle)
            await pilot.press("b")
            assert await until_text(pilot, "bell on")

    run(go())


def test_nan_loss_is_alerted_and_charted(tmp_path):
    rd = write_run(tmp_path / "run", 200, nan_at=(150,))

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "nonfinite")
            big = app.query_one(BigChart)
            assert await until(pilot, lambda: any(big.last_buckets.nan))

    run(go())


def test_checkpoint_selection_and_enter_opens_resume_with_that_checkpoint(tmp_path):
    rd = write_run(tmp_path / "run", 300, target=1000, checkpoints=(100, 200, 300), end="stopped")

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(CheckpointTable)
            assert await until(pilot, lambda: screen_text(pilot).count("sha256 ok") == 3)
            table.focus()
            await pilot.press("down")  # newest first: row 2 is step 200
            await pilot.press("enter")
            assert await until(pilot, lambda: isinstance(app.screen, ResumeScreen))
            screen = app.screen
            assert Path(screen.checkpoint).name == "ckpt_00000200.pt"
            assert screen.checkpoint_step == 200
            assert await until_text(pilot, "ckpt_00000200.pt")
            assert "sha256 ok" in screen_text(pilot)
            await pilot.press("escape")
            # r alone resumes from the latest verified checkpoint.
            await pilot.press("r")
            assert await until(pilot, lambda: isinstance(app.screen, ResumeScreen))
            assert Path(app.screen.checkpoint).name == "ckpt_00000300.pt"

    run(go())


def test_corrupt_checkpoint_is_shown_as_not_verified(tmp_path):
    rd = write_run(tmp_path / "run", 200, checkpoints=(100, 200))
    pt = rd / "checkpoints" / "ckpt_00000200.pt"
    data = bytearray(pt.read_bytes())
    data[10] ^= 0xFF  # same size, different bytes
    pt.write_bytes(bytes(data))

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "sha256 mismatch")
            assert await until_text(pilot, "sha256 ok")  # step 100 is fine (verified next)
            await pilot.press("r")
            assert await until(pilot, lambda: isinstance(app.screen, ResumeScreen))
            assert Path(app.screen.checkpoint).name == "ckpt_00000100.pt"

    run(go())


def test_resume_rejects_a_target_not_beyond_the_checkpoint(tmp_path):
    rd = write_run(tmp_path / "run", 100, target=100, checkpoints=(100,), end="completed")

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "sha256 ok")
            await pilot.press("r")
            assert await until(pilot, lambda: isinstance(app.screen, ResumeScreen))
            assert await until(pilot, lambda: not app.screen.checking)
            app.screen.query_one("#target").value = "50"
            await pilot.press("enter")
            assert await until_text(pilot, "target step must be beyond 100")
            assert isinstance(app.screen, ResumeScreen)

    run(go())


def test_fresh_clone_shows_demo_config_preflight_and_start_key(tmp_path):
    async def go():
        app = make_app(None, tmp_path / "logs")
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "No training run yet")
            text = screen_text(pilot)
            assert str(DEMO_CONFIG) in text
            assert " s " in text and "to start training" in text
            assert await until_text(pilot, "Configuration")  # preflight lines arrived

    run(go())


def test_the_start_key_stays_in_view_at_80x24_above_a_long_preflight(tmp_path):
    async def go():
        app = make_app(None, tmp_path / "logs")
        async with app.run_test(size=(80, 24)) as pilot:
            assert await until(pilot, lambda: app.control.welcome_result is not None, 120)
            await pilot.pause(0.2)  # the preflight's lines drawn
            text = screen_text(pilot)
            assert "No training run yet" in text and "to start training" in text, text

    run(go())


def test_start_confirmation_shows_preflight_lines(tmp_path, monkeypatch):
    # Four CPUs and no GPU, whatever this machine has: + and - stay within 1..4.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr("nal_tui.core.control.nproc.usable_cpus", lambda: 4)

    async def go():
        app = make_app(None, tmp_path / "logs")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            assert await until(pilot, lambda: isinstance(app.screen, StartScreen))
            assert await until(pilot, lambda: not app.screen.checking, timeout=60)
            # The welcome's report is reused: drawn at mount, a moment after the screen.
            assert await until(pilot, lambda: "checks passed" in screen_text(pilot), 60)
            text = screen_text(pilot)
            assert "Configuration" in text and str(DEMO_CONFIG) in text
            await pilot.press("plus", "plus")
            assert app.screen.query_one("#nproc").value == "3"
            await pilot.press("escape")
            assert await until(pilot, lambda: not isinstance(app.screen, StartScreen))

    run(go())


def test_start_blocked_when_preflight_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntrain: {batch_size: -3}\n")

    async def go():
        app = make_app(None, tmp_path / "logs", config_path=bad)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            assert await until(pilot, lambda: isinstance(app.screen, StartScreen))
            assert await until(pilot, lambda: not app.screen.checking, timeout=60)
            await pilot.press("enter")
            assert await until_text(pilot, "preflight failed")
            assert isinstance(app.screen, StartScreen)
            logs = tmp_path / "logs"
            assert not logs.exists() or not any(logs.iterdir())

    run(go())


def test_run_picker_lists_runs_with_status_and_opens_one(tmp_path):
    logs = tmp_path / "logs"
    write_run(logs / "alpha", 10, name="alpha", end="completed", target=10)
    write_run(logs / "beta", 20, name="beta", end="stopped")

    async def go():
        app = make_app(logs / "beta", logs)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "beta")
            await pilot.press("o")
            assert await until(pilot, lambda: isinstance(app.screen, RunPickerScreen))
            text = screen_text(pilot)
            assert "alpha" in text and "completed" in text
            assert "beta" in text and "stopped" in text
            table = app.screen.query_one("#runs-table")
            row = [r.key.value for r in table.ordered_rows].index(str(logs / "alpha"))
            table.move_cursor(row=row)
            await pilot.press("enter")
            assert await until(pilot, lambda: app.run_dir == logs / "alpha")
            assert await until_text(pilot, "COMPLETED")

    run(go())


def test_resume_marker_and_steps_after_a_resume(tmp_path):
    rd = write_run(tmp_path / "run", 150, target=400, checkpoints=(100, 150))
    with EventWriter(rd / "events.jsonl") as w:
        w.write(ev.RunStart(run_id="r2", pid=999_998, config_path="c", start_step=100,
                            target_step=400, world_size=1, device="cpu", versions={},
                            run_name="demo"), t=T0 + 100)  # fmt: skip
        for s in range(101, 181):
            w.write(step_event(s), t=T0 + 100 + s * 0.1)
            if s == 150:  # the resumed run saves step 150 again, to the same path
                path = write_checkpoint(rd, 150)
                w.write(ev.Checkpoint(step=150, path=str(path), bytes=path.stat().st_size,
                                      sha256="-"), t=T0 + 200)  # fmt: skip

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "step 180/400")
            assert 100 in app.state.branches.resume_steps
            big = app.query_one(BigChart)
            assert await until(pilot, lambda: big.markers == tuple(app.state.branches.resume_steps))
            # One row per checkpoint file, though step 150 was logged twice.
            assert await until(pilot, lambda: screen_text(pilot).count("sha256 ok") == 2)
            assert app.query_one(CheckpointTable).row_count == 2

    run(go())


def test_ctrl_c_and_q_quit(tmp_path):
    rd = write_run(tmp_path / "run", 5)

    for key in ("ctrl+c", "q"):

        async def go(key=key):
            app = make_app(rd, tmp_path)
            async with app.run_test(size=SIZE) as pilot:
                assert await until_text(pilot, "step 5")
                await pilot.press(key)
                assert await until(pilot, lambda: not app.is_running, 10)
            assert app.return_code == 0

        run(go())


def _header(world: int, device: str) -> str:
    v = HeaderView("ljs", "running", "", 1234, 1.0, 5, 100, device, world)
    return fit_parts(header_parts(v), 200).plain


def test_header_shows_ranks_for_ddp_runs_and_device_only_for_one():
    line = _header(4, "cuda:0")
    assert "ljs" in line and "pid 1234" in line and "cuda:0 × 4 ranks" in line
    line = _header(1, "cpu")
    assert "  cpu" in line and "ranks" not in line


def test_header_drops_whole_parts_on_a_narrow_terminal():
    v = HeaderView("a-long-run-name", "running", "", 1234, 65.0, 123_456, 1_000_000, "cuda:0", 8)
    for width in (40, 60, 80, 100):
        line = fit_parts(header_parts(v, "loading history…"), width).plain
        assert len(line) <= width and "…" not in line, line
        assert "a-long-run-name" in line and "RUNNING" in line and "step 123,456" in line


def test_a_failed_preflight_names_the_failure_in_view_at_80x24(tmp_path):
    # The resume check comes last in the report: at 80x24 it is below the dialog's fold, so
    # the refusal itself names it.
    rd = write_run(tmp_path / "run", 200, checkpoints=(200,), end="stopped")
    corrupt(rd / "checkpoints" / "ckpt_00000200.pt")

    async def go():
        app = make_app(
            rd,
            tmp_path,
        )
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("r")
            assert await until(pilot, lambda: isinstance(app.screen, ResumeScreen))
            assert await until(pilot, lambda: not app.screen.checking, timeout=120)
            await pilot.press("enter")
            assert await until_text(pilot, "preflight failed")
            bad = next(c for c in app.screen.report.checks if c.status == "fail")
            assert f"{bad.name}: " in screen_text(pilot).replace("\n", " "), screen_text(pilot)

    run(go())


def test_resize_under_the_samples_view_lays_the_dashboard_out_for_the_new_size(tmp_path):
    """A terminal resized while another screen (here the samples view) is on top: back on
    the dashboard, its layout is the new size's (the big chart at 160x45), not the old one's."""
    from nal_tui.ui.samples.screen import SamplesScreen

    rd = write_run(tmp_path / "run", 20)

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await until_text(pilot, "step 20")
            big = app.query_one(BigChart)
            assert not big.display  # compact: no big chart
            await pilot.press("v")
            assert await until(pilot, lambda: isinstance(app.screen, SamplesScreen))
            await pilot.resize_terminal(160, 45)
            await pilot.pause()
            await pilot.press("escape")
            assert await until(pilot, lambda: not isinstance(app.screen, SamplesScreen))
            assert await until(pilot, lambda: big.display and big.region.height > 0)
            assert "G total · whole run" in screen_text(pilot)

    run(go())


def test_q_closes_the_run_picker_like_every_other_view(tmp_path):
    """``q`` backs out of the run picker (as of the samples view, the validation chart and
    the help) and leaves the dashboard running on the same run."""
    logs = tmp_path / "logs"
    rd = write_run(logs / "demo", 20)
    write_run(logs / "other", 10, name="other")

    async def go():
        app = make_app(rd, logs)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "step 20")
            await pilot.press("o")
            assert await until(pilot, lambda: isinstance(app.screen, RunPickerScreen))
            await pilot.press("q")
            assert await until(pilot, lambda: not isinstance(app.screen, RunPickerScreen))
            assert app.is_running and app.run_dir == rd
            assert "Runs under" not in screen_text(pilot)

    run(go())
