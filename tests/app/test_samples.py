"""The samples view (key ``v``): on a real run made by the trainer (Pilot), and as SVG
snapshots at 80x24, 120x40 and 160x45.

The snapshots use pictures drawn here in integer arithmetic, not a trained generator's: a
trained sample's log-mel differs in its last bits from one CPU to another, and a snapshot
must come out the same on every machine. The Pilot tests use the trainer's own files.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import time
from pathlib import Path

import pytest

from nal_tui.ui.samples.screen import SamplesScreen
from nal_tui.ui.samples.spectro import Spectrogram
from tests.app.apphelp import make_app, screen_text, svg_text, until
from tests.factory import T0, val_record, write_run
from trainer.events.codec import encode
from trainer.rundir import melpic


def sync(fn):
    """Run an async test body (Pilot) to completion; fixtures pass through."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture
def run(sampled_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "logs" / "demo"
    shutil.copytree(sampled_run, dst)
    return dst


async def _open(pilot) -> SamplesScreen:
    app = pilot.app
    assert await until(pilot, lambda: not app.feeds.loading and app.state.step == 4, 60)
    await pilot.press("v")
    assert await until(pilot, lambda: isinstance(app.screen, SamplesScreen), 30)
    await pilot.pause()
    return app.screen


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_v_shows_the_latest_validations_spectrograms_and_walks_back(run: Path) -> None:
    app = make_app(run, run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        top, bottom = screen.query_one("#spec-top"), screen.query_one("#spec-bottom")
        assert await until(pilot, lambda: top.grid is not None and bottom.grid is not None)
        # Two pixels per cell: the grid is the panel's width by twice its height.
        assert (top.grid.cols, top.grid.rows) == (top.content_size.width,
                                                  2 * top.content_size.height)  # fmt: skip
        text = screen_text(pilot)
        utt = screen.current().utt
        assert f"step 4 (2/2) · {utt} (val 1/2) · ▲ generated" in text
        assert f"samples/step_00000004/{utt}_gen.wav" in text
        assert f"samples/gt/{utt}.wav" in text and "val set metrics: mel_l1 " in text
        truth = bottom.grid.values
        await pilot.press("left")
        await pilot.pause()
        assert "step 2 (1/2)" in screen_text(pilot)
        assert await until(pilot, lambda: bottom.grid is not None)
        assert bottom.grid.values == truth  # the same ground truth at every step
        await pilot.press("down")
        await pilot.pause()
        assert screen.current().utt != utt and "(val 2/2)" in screen_text(pilot)


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_difference_and_ab_views(run: Path) -> None:
    app = make_app(run, run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        top, bottom = screen.query_one("#spec-top"), screen.query_one("#spec-bottom")
        await pilot.press("d")
        await pilot.pause()
        assert "▼ generated − truth (dB" in screen_text(pilot)
        assert await until(pilot, lambda: bottom.grid is not None and bottom.grid.lo == -20)
        # An untrained generator's sample is far from its truth: the difference is not flat.
        flat = [v for row in bottom.grid.values for v in row]
        assert max(flat) - min(flat) > 10
        await pilot.press("a")  # A/B: step 4 against B (default: the first validation, 2)
        await pilot.pause()
        text = screen_text(pilot)
        assert "▲ A" in text and "▼ B: step 2" in text
        assert await until(pilot, lambda: top.grid is not None and bottom.grid is not None)
        assert top.grid.values != bottom.grid.values  # two steps, two generators
        await pilot.press("escape")
        assert await until(pilot, lambda: not isinstance(app.screen, SamplesScreen))


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_play_without_a_player_says_so_and_c_copies_the_path(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(run / "no-players-here"))
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_TTY", raising=False)
    app = make_app(run, run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        await pilot.press("p")
        await pilot.pause()
        assert "no audio player on PATH" in screen_text(pilot)
        await pilot.press("c")
        await pilot.pause()
        want = str(run / screen.current().gen_wav)
        assert app.clipboard == want and "copied" in screen_text(pilot)


@pytest.mark.slow  # trains a tiny run first (once per session)
@sync
async def test_a_corrupt_or_missing_picture_is_one_line_and_the_rest_still_draws(
    run: Path,
) -> None:
    latest = sorted((run / "samples").glob("step_00000004/*_gen.logmel"))
    latest[0].write_bytes(b"NALMEL1\n{}\n\x1b[2J")
    for p in (run / "samples" / "gt").glob("*.logmel"):
        p.unlink()
    app = make_app(run, run.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        top, bottom = screen.query_one("#spec-top"), screen.query_one("#spec-bottom")
        assert await until(pilot, lambda: top.reason != "" and bottom.reason != "")
        assert "header field 'mels' must be an integer" in top.reason
        assert "no mel picture beside" in bottom.reason
        text = screen_text(pilot)
        assert "must be an integer" in text and "\x1b" not in text
        await pilot.press("down")  # the other utterance's picture is fine
        assert await until(pilot, lambda: top.grid is not None)


@sync
async def test_c_copies_an_absolute_path_when_the_run_dir_was_given_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nal-tui --run-dir logs/demo``: the copied path still names the file from another
    directory or host (scp, a player elsewhere), not ``logs/demo/...`` of this shell's cwd."""
    _synthetic_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    app = make_app(Path("logs/demo"), Path("logs"))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: not app.feeds.loading and app.state.step == 400, 60)
        await pilot.press("v")
        assert await until(pilot, lambda: isinstance(app.screen, SamplesScreen), 30)
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        want = tmp_path / "logs" / "demo" / app.screen.current().gen_wav
        assert app.clipboard == str(want) and want.is_file()


@sync
async def test_validations_in_the_log_but_no_samples_on_disk_say_so(tmp_path: Path) -> None:
    """A run whose samples/ folder was moved or deleted: the view says the log names
    samples that are not on disk (not "no validation samples yet")."""
    rd = _synthetic_run(tmp_path)
    shutil.rmtree(rd / "samples")
    app = make_app(rd, rd.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: not app.feeds.loading and app.state.step == 400, 60)
        await pilot.press("v")
        assert await until(pilot, lambda: isinstance(app.screen, SamplesScreen), 30)
        await pilot.pause()
        text = screen_text(pilot)
        assert "not on disk" in text and "step 400" in text, text
        assert "yet" not in text


# ---------------------------------------------------------------- snapshots

SIZES = [(80, 24), (120, 40), (160, 45)]


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _harmonics(mels: int, frames: int, f0_row: int, noise: int) -> bytes:
    """A voiced sound: harmonic lines every ``f0_row`` bands fading upwards, pauses, and
    (``noise`` > 0) a buzz line and high-band hiss as a GAN's artefacts look."""
    px = bytearray()
    for r in range(mels):
        for c in range(frames):
            voiced = (c // 24) % 3 != 2
            v = 40
            if voiced and r % f0_row == 0:
                v = 230 - 2 * r
            if noise and r == mels // 2:
                v = max(v, 170)  # a horizontal buzz line
            if noise and r > mels * 3 // 4:
                v = max(v, 90 + (r * 7 + c * 13) % noise)
            px.append(max(0, min(255, v)))
    return bytes(px)


def _synthetic_run(tmp_path: Path) -> Path:
    rd = write_run(tmp_path / "logs" / "demo", 400, checkpoints=(400,), t0=T0, dt=1.0)
    for p in (rd / "checkpoints").glob("*.json"):
        p.write_text(p.read_text().replace('"created": ', '"created": 1700000000.0, "x": '))
    recs = []
    for step, noise in ((200, 60), (400, 20)):
        d = rd / "samples" / f"step_{step:08d}"
        d.mkdir(parents=True)
        (d / "LJ001-0001_gen.wav").write_bytes(b"RIFF")
        (d / "LJ001-0001_gen.logmel").write_bytes(
            melpic.pack(_harmonics(64, 200, 6, noise), 64, 200, -90.0, -10.0,
                        sample_rate=16000, frame_hop=128, fmin=0, fmax=8000, seconds=1.6))  # fmt: skip
        mets = {"mel_l1": 0.9 if step == 200 else 0.5, "pesq": 1.8 if step == 200 else 2.6}
        recs.append(val_record(step, set="val", metrics=mets, t=T0 + step,
                               samples=[f"samples/step_{step:08d}/LJ001-0001_gen.wav",
                                        "samples/gt/LJ001-0001.wav"]))  # fmt: skip
    g = rd / "samples" / "gt"
    g.mkdir()
    (g / "LJ001-0001.wav").write_bytes(b"RIFF")
    (g / "LJ001-0001.logmel").write_bytes(
        melpic.pack(_harmonics(64, 200, 6, 0), 64, 200, -90.0, -10.0,
                    sample_rate=16000, frame_hop=128, fmin=0, fmax=8000, seconds=1.6))  # fmt: skip
    with open(rd / "events.jsonl", "ab") as f:
        for r in recs:
            f.write(encode(r))
    return rd


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("keys", [(), ("d",), ("a",)], ids=["gen", "diff", "ab"])
def test_samples_view_snapshot(snap_compare, tmp_path, size, keys):
    app = make_app(_synthetic_run(tmp_path), tmp_path / "logs", frozen=True)
    shots: list[str] = []

    async def before(pilot):
        assert await until(pilot, lambda: app.settled and app.state.step == 400, 120)
        await pilot.press("v", *keys)
        assert await until(pilot, lambda: isinstance(app.screen, SamplesScreen), 30)
        assert await until(
            pilot, lambda: all(w.grid is not None for w in app.screen.query(Spectrogram))
        )
        await pilot.pause()
        shots.append(app.export_screenshot())

    assert snap_compare(app, terminal_size=size, run_before=before)
    text = svg_text(shots[-1])
    assert "LJ001-0001" in text and "step 400 (2/2)" in text
    if size[0] >= 120:
        assert "samples/step_00000400/LJ001-0001_gen.wav" in text
