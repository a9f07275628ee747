"""Compare from the dashboard's run picker (``o``): Space marks runs (a marker in the list),
``c`` opens the compare screen on the 2-6 marked ones; fewer or more says so and keeps
the picker open. Real run directories written by the trainer's own event writer."""

from __future__ import annotations

from pathlib import Path

from nal_tui.ui.compare.app import CompareScreen
from nal_tui.ui.runs.picker import MARK, RunPickerScreen
from tests.app.apphelp import make_app, screen_text, until
from tests.app.test_samples import sync
from tests.factory import val_record, write_run
from trainer.events.codec import encode

SIZE = (120, 40)


def _runs(logs: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        rd = write_run(logs / f"run{i}", 120 + 10 * i, name=f"run{i}")
        with open(rd / "events.jsonl", "ab") as f:
            f.write(encode(val_record(100, set="val", metrics={"mel_l1": 0.5 + i / 10})))
        out.append(rd)
    return out


async def _picker(pilot) -> RunPickerScreen:
    app = pilot.app
    assert await until(pilot, lambda: not app.feeds.loading and app.state.step is not None, 60)
    await pilot.press("o")
    assert await until(pilot, lambda: isinstance(app.screen, RunPickerScreen), 30)
    await pilot.pause()
    return app.screen


def _row_of(picker: RunPickerScreen, path: Path) -> int:
    return [r.key.value for r in picker.query_one("#runs-table").ordered_rows].index(str(path))


@sync
async def test_mark_two_runs_and_compare_them(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    runs = _runs(logs, 3)
    app = make_app(runs[0], logs)
    async with app.run_test(size=SIZE) as pilot:
        picker = await _picker(pilot)
        await pilot.press("c")  # nothing marked yet
        await pilot.pause()
        assert "compare takes 2 to 6 runs: 0 marked" in screen_text(pilot)
        assert app.screen is picker
        table = picker.query_one("#runs-table")
        table.move_cursor(row=_row_of(picker, runs[0]))
        await pilot.press("space")
        await pilot.pause()
        assert f"{MARK}▶ run0" in screen_text(pilot)  # marked, and the run shown
        await pilot.press("c")
        await pilot.pause()
        assert "compare takes 2 to 6 runs: 1 marked" in screen_text(pilot)
        table.move_cursor(row=_row_of(picker, runs[2]))
        await pilot.press("space")
        await pilot.pause()
        text = screen_text(pilot)
        assert f"{MARK}  run2" in text and "2 marked · c compares them" in text
        assert f"{MARK}  run1" not in text
        await pilot.press("c")
        assert await until(pilot, lambda: isinstance(app.screen, CompareScreen), 60)
        await pilot.pause()
        text = screen_text(pilot)
        assert "compare · 2 runs · validation mel L1 distance" in text
        assert "━ run0" in text and "━ run2" in text and "━ run1" not in text
        assert "0.5 @100" in text and "0.7 @100" in text  # each run's best and its step
        assert "q/Esc back" in text
        await pilot.press("t")  # the compare keys work here as in nal-tui compare
        await pilot.pause()
        assert "against wall-clock time" in screen_text(pilot)
        await pilot.press("escape")
        assert await until(pilot, lambda: not isinstance(app.screen, CompareScreen), 30)
        assert app.run_dir == runs[0]  # back on the dashboard, the same run


@sync
async def test_more_than_six_marked_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    runs = _runs(logs, 7)
    app = make_app(runs[0], logs)
    async with app.run_test(size=SIZE) as pilot:
        picker = await _picker(pilot)
        picker.query_one("#runs-table").move_cursor(row=0)
        for _ in runs:  # Space marks and moves down
            await pilot.press("space")
        await pilot.pause()
        assert len(picker.marked) == 7
        await pilot.press("c")
        await pilot.pause()
        assert "compare takes 2 to 6 runs: 7 marked" in screen_text(pilot)
        assert app.screen is picker
        await pilot.press("up", "space")  # unmark the last: six may be compared
        await pilot.pause()
        assert "6 marked · c compares them" in screen_text(pilot)
        await pilot.press("c")
        assert await until(pilot, lambda: isinstance(app.screen, CompareScreen), 60)
        await pilot.pause()
        assert "compare · 6 runs" in screen_text(pilot)
