"""The dashboard under Pilot: what a user sees for a run, live updates, hostile logs."""

from __future__ import annotations

import asyncio
import threading

from nal_tui.core.reducer.present import header_view
from nal_tui.ui.checkpoints.table import CheckpointTable
from nal_tui.ui.help import HelpScreen
from nal_tui.ui.run import feeds
from tests.app.apphelp import make_app, screen_text, until
from tests.factory import append_raw, append_steps, write_checkpoint, write_run
from trainer.events import schema as ev
from trainer.events.codec import encode
from trainer.rundir.layout import EVENTS, checkpoint_paths


def run(coro) -> None:
    asyncio.run(coro)


def test_opens_a_run_and_follows_new_steps(tmp_path):
    rd = write_run(tmp_path / "logs" / "demo", 300, checkpoints=(100, 200))

    async def go():
        app = make_app(rd, tmp_path / "logs")
        async with app.run_test(size=(160, 45)) as pilot:
            assert await until(pilot, lambda: "step 300/1,000" in screen_text(pilot))
            assert await until(pilot, lambda: "sha256 ok" in screen_text(pilot))
            append_steps(rd, 301, 320)
            assert await until(pilot, lambda: "step 320/1,000" in screen_text(pilot))

    run(go())


def test_missing_run_dir_is_reported(tmp_path):
    """A mistyped --run-dir: said so (the path as typed), with the run it probably meant;
    the preflight and a start refer to the directory a start would create."""
    logs = tmp_path / "logs"
    write_run(logs / "demo", 10)

    async def go():
        app = make_app(logs / "dmeo", logs)
        async with app.run_test(size=(160, 45)) as pilot:
            assert await until(pilot, lambda: "dmeo does not exist" in screen_text(pilot))
            text = screen_text(pilot)
            assert "did you mean" in text
            assert str(logs / "demo") in text and "Run dir" in text
            assert await until(pilot, lambda: "checks passed" in screen_text(pilot), 120)
            assert "dmeo is free" in screen_text(pilot)

    run(go())


def test_deleted_checkpoints_leave_the_table(tmp_path):
    rd = write_run(tmp_path / "run", 300, checkpoints=(100, 200, 300))

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=(160, 45)) as pilot:
            table = app.query_one(CheckpointTable)
            assert await until(pilot, lambda: table.row_count == 3)
            for p in checkpoint_paths(rd, 100):
                p.unlink()
            app.feeds.ckpt_service.poke()
            assert await until(pilot, lambda: table.row_count == 2)
            assert "100 " not in "".join(str(k.value) for k in table.rows)

    run(go())


def test_hostile_log_strings_never_reach_the_screen(tmp_path):
    rd = write_run(tmp_path / "run", 20, name="evil\x1b]0;pwned\x07\x1b[2Jname")
    bad = encode(
        ev.Alert(kind="k\x1b[5m", step=20, message="\x1b[31mred " + "x" * 5000).to_record()
    )
    append_raw(rd / EVENTS, bad + b'{"v":1,"event":"step","t":1,"step":-4}\n')

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=(160, 45)) as pilot:
            assert await until(
                pilot, lambda: app.settled and "evilname" in screen_text(pilot)
            )  # the garbled count comes with the whole history, after the tail preview
            text = screen_text(pilot)
            assert "\x1b" not in text and "pwned" not in text
            assert "1 garbled line" in text
            header = header_view(app.state, 0).run_name
            assert header == "evilname"

    run(go())


def test_stale_toasts_are_dismissed_when_the_status_changes(tmp_path):
    rd = write_run(tmp_path / "run", 20)

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            assert await until(pilot, lambda: app.state.step == 20)
            app.notices.toast("about the old state")
            app.notices.last_toast -= 60  # it is old now
            await pilot.pause(0.1)
            assert len(app._notifications) == 1
            from tests.factory import run_end, write_events

            write_events(rd / EVENTS, [run_end(20)])
            assert await until(pilot, lambda: app.state.status == "completed")
            assert await until(pilot, lambda: len(app._notifications) == 0)

    run(go())


def test_help_lists_every_key(tmp_path):
    rd = write_run(tmp_path / "run", 5)

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("question_mark")
            assert await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            text = screen_text(pilot)
            for key in ("s", "x", "r", "o", "Ctrl+C", "Enter"):
                assert key in text

    run(go())


def test_new_checkpoint_shows_up_verified(tmp_path):
    rd = write_run(tmp_path / "run", 50)

    async def go():
        app = make_app(rd, tmp_path)
        async with app.run_test(size=(160, 45)) as pilot:
            assert await until(pilot, lambda: app.state.step == 50)
            p = write_checkpoint(rd, 60)
            from tests.factory import steps, write_events

            write_events(rd / EVENTS, [*steps(51, 60),
                         ev.Checkpoint(step=60, path=str(p), bytes=4096, sha256="-")])  # fmt: skip
            assert await until(pilot, lambda: "sha256 ok" in screen_text(pilot))

    run(go())


def test_a_log_without_index_shows_its_end_first_then_leaves_an_index(tmp_path, monkeypatch):
    """The newest step is on screen while the history still loads (held here until the
    screen shows it); the whole run follows, and the log has an index for the next open."""
    rd = write_run(tmp_path / "logs" / "demo", 3000, index=False)
    release = threading.Event()
    real = feeds.load_history

    def held(*a, **k):
        assert release.wait(120), "the test never let the history load"
        return real(*a, **k)

    monkeypatch.setattr(feeds, "load_history", held)

    async def go():
        app = make_app(rd, tmp_path / "logs")
        async with app.run_test(size=(160, 45)) as pilot:
            assert await until(pilot, lambda: "step 3,000/1,000" in screen_text(pilot))
            assert "loading history" in screen_text(pilot) and app.feeds.loading
            release.set()
            assert await until(pilot, lambda: not app.feeds.loading, 120)
            assert "loading history" not in screen_text(pilot)
            assert len(app.state.losses["g"].series) == 3000  # the whole run, not the tail
        assert (rd / "events.idx").exists()

    run(go())
