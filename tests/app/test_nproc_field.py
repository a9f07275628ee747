"""The start dialog's processes field (N): non-digits are refused with a message, a number
beyond the machine's limit (the core's rule, nal_tui.core.control.nproc) is said as typed
and Enter refuses it, and preflight runs again for the N typed."""

from __future__ import annotations

import asyncio

from nal_tui import preflight
from nal_tui.core.control import nproc
from nal_tui.ui.launch.confirm import StartScreen
from tests.app.apphelp import make_app, screen_text, until
from tests.factory import fake_base, kill_started

SIZE = (160, 50)


def test_processes_field_refuses_a_typed_path_and_too_many_and_rechecks(tmp_path, monkeypatch):
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: the limit is one per CPU
    monkeypatch.setattr(nproc, "usable_cpus", lambda: 3)
    asked: list[int] = []
    real = preflight.run_checks

    def recorded(*a, **kw):
        asked.append(kw.get("nproc", 1))
        return real(*a, **kw)

    monkeypatch.setattr(preflight, "run_checks", recorded)
    logs = tmp_path / "logs"

    async def go():
        app = make_app(None, logs)
        async with app.run_test(size=SIZE) as pilot:
            assert await until(pilot, lambda: "No training run yet" in screen_text(pilot), 60)
            await pilot.press("s")
            assert await until(pilot, lambda: isinstance(app.screen, StartScreen), 60)
            screen = app.screen
            assert await until(pilot, lambda: not screen.checking, 120), screen_text(pilot)
            box = screen.query_one("#nproc")
            box.focus()
            box.value = ""
            await pilot.pause()
            await pilot.press("l")  # a path typed here by mistake: refused, and said
            assert await until(
                pilot, lambda: "processes: digits only, 1 to 3" in screen_text(pilot)
            )
            await pilot.press(*"ogs/g_02500000")
            assert await until(pilot, lambda: box.value == "02500000")
            said = "2,500,000 processes is more than this machine allows: at most 3"
            assert await until(pilot, lambda: said in screen_text(pilot)), screen_text(pilot)
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen and said in screen_text(pilot)  # not started
            box.value = ""
            await pilot.press("2")
            assert await until(pilot, lambda: 2 in asked and not screen.checking, 180), asked
            assert screen.nproc == 2 and said not in screen_text(pilot)
            await pilot.press("plus", "plus")  # +/- stay within 1..3
            assert await until(pilot, lambda: box.value == "3")
            assert await until(pilot, lambda: 3 in asked and not screen.checking, 180), asked
            await pilot.press("escape")
            assert await until(pilot, lambda: not isinstance(app.screen, StartScreen))
        assert not (logs / "demo").exists()

    try:
        asyncio.run(go())
    finally:
        kill_started()
