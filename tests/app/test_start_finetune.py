"""The start dialog's fine-tune source (issue 19): a checkpoint path typed in "init from"
runs preflight's fine-tune check, and Enter starts the (fake) trainer with --init-from;
a path that is not a checkpoint shows the check's failure and Enter refuses to start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from nal_tui.core.control import launch
from nal_tui.core.control.session import RunSession
from nal_tui.ui.launch.confirm import StartScreen
from nal_tui.ui.launch.stop import StopScreen
from tests.app.apphelp import make_app, screen_text, until
from tests.factory import fake_base, kill_started
from tests.hifigan_factory import tiny_cfg, write_reference
from trainer.cli import main

SIZE = (160, 50)


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    kill_started()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An imported run's checkpoint and a config that fits it (on the demo corpus)."""
    tmp = tmp_path_factory.mktemp("ft")
    ref = write_reference(tmp / "ref", tiny_cfg())
    args = ["import", "--format", "hifigan", "--config", str(ref.config)]
    assert main([*args, "--run-dir", str(tmp / "src"), str(ref.g), str(ref.do)]) == 0
    data = yaml.safe_load((tmp / "src" / "config.yaml").read_text())
    data["name"] = "ft"
    # A demo corpus not made yet (the fake trainer never makes it): the clone's own one, when
    # earlier tests made it, is 16 kHz, and the check would rightly warn about 22.05 kHz.
    data["data"] = {"corpus_dir": str(tmp / "corpus"), "demo": True, "val_size": 4}
    cfg = tmp / "ft.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return tmp / "src" / "checkpoints" / "ckpt_00000000.pt", cfg


def _fine_tune_checks(screen: StartScreen) -> list:
    """The report's fine-tune check (read from the report, not the screen: on a busy
    machine the report grows a warning and the check scrolls below the dialog's fold)."""
    report = screen.report
    return [] if report is None else [c for c in report.checks if c.name == "Fine-tune source"]


async def _open_start(pilot, app) -> StartScreen:
    await pilot.press("s")
    assert await until(pilot, lambda: isinstance(app.screen, StartScreen), 60)
    assert await until(pilot, lambda: not app.screen.checking, 120), screen_text(pilot)
    return app.screen


async def _type_source(pilot, screen: StartScreen, path: str) -> None:
    screen.query_one("#init-from").focus()
    await pilot.pause()
    await pilot.press(*path)  # typed, as a user does (its '-' and '=' are no +/- keys here)
    assert await until(pilot, lambda: screen.init_from == path, 60)
    assert await until(pilot, lambda: not screen.checking, 180), screen_text(pilot)


def test_a_typed_checkpoint_is_checked_and_started_from(tmp_path, monkeypatch, source):
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    ckpt, cfg = source
    logs = tmp_path / "logs"
    cmds: list[list[str]] = []
    real = launch.trainer_command

    def recorded(*a, **kw):
        cmd, launcher = real(*a, **kw)
        cmds.append(list(cmd))
        return cmd, launcher

    monkeypatch.setattr(launch, "trainer_command", recorded)

    async def go():
        app = make_app(None, logs, config_path=cfg)
        async with app.run_test(size=SIZE) as pilot:
            assert await until(pilot, lambda: "No training run yet" in screen_text(pilot), 60)
            screen = await _open_start(pilot, app)
            assert not _fine_tune_checks(screen)  # from scratch: no such check
            await _type_source(pilot, screen, str(ckpt))
            shows = lambda: bool(_fine_tune_checks(screen))  # noqa: E731
            assert await until(pilot, shows, 60), screen_text(pilot)
            ft = [c for c in screen.report.checks if c.name == "Fine-tune source"]
            assert [c.status for c in ft] == ["pass"] and "hash verified" in ft[0].message
            await pilot.press("ctrl+g")  # generator only: checked again, then passed on
            assert await until(pilot, lambda: screen.generator_only and not screen.checking, 180)
            ft = [c for c in screen.report.checks if c.name == "Fine-tune source"]
            assert [c.status for c in ft] == ["pass"], ft
            assert await until(pilot, shows, 60), screen_text(pilot)
            await pilot.press("enter")
            assert await until(pilot, lambda: app.run_dir == logs / "ft", 120), screen_text(pilot)
            assert len(cmds) == 1, cmds
            cmd = cmds[0]
            assert cmd[cmd.index("--init-from") + 1] == str(ckpt), cmd
            assert "--init-from-generator-only" in cmd, cmd
            assert await until(pilot, lambda: "RUNNING" in screen_text(pilot), 60)
            await pilot.press("x")
            assert await until(pilot, lambda: isinstance(app.screen, StopScreen), 60)
            await pilot.press("y")
            assert await until(pilot, lambda: "STOPPED" in screen_text(pilot), 60)
            assert not RunSession(logs / "ft").trainer().live

    asyncio.run(go())


def test_a_bad_path_shows_the_check_and_enter_refuses(tmp_path, monkeypatch, source):
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    _, cfg = source
    logs = tmp_path / "logs"
    not_a_ckpt = tmp_path / "notes-v2.txt"
    not_a_ckpt.write_text("not a checkpoint")

    async def go():
        app = make_app(None, logs, config_path=cfg)
        async with app.run_test(size=SIZE) as pilot:
            assert await until(pilot, lambda: "No training run yet" in screen_text(pilot), 60)
            screen = await _open_start(pilot, app)
            for bad in (str(tmp_path / "missing" / "ckpt_00000010.pt"), str(not_a_ckpt)):
                screen.query_one("#init-from").value = ""
                await _type_source(pilot, screen, bad)
                shows = lambda: bool(_fine_tune_checks(screen))  # noqa: E731
                assert await until(pilot, shows, 60), screen_text(pilot)
                ft = [c for c in screen.report.checks if c.name == "Fine-tune source"]
                assert [c.status for c in ft] == ["fail"], ft
                await pilot.press("enter")
                assert await until(
                    pilot, lambda: "preflight failed, fix it before you start" in screen_text(pilot)
                )
                assert app.screen is screen  # still open: nothing started
            assert not (logs / "ft").exists()

    asyncio.run(go())
