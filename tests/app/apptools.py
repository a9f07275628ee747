"""Helpers for the app tests: real run directories and reading the screen as text."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from trainer import events as ev
from trainer import rundir

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
FAKE_TRAINER = ROOT / "tests" / "unit" / "fake_trainer.py"
T0 = 1_700_000_000.0


def step_event(step: int, g: float = 50.0, d: float = 3.0) -> ev.Step:
    return ev.Step(
        step=step,
        epoch=step // 100,
        g=g,
        d=d,
        stft=1.0,
        adv=2.5,
        fm=4.5,
        recon="mrstft",
        lr_g=2e-4,
        lr_d=2e-4,
        step_time=0.1,
        samples_per_s=40.0,
    )


def write_run(
    run_dir: Path,
    steps: int,
    *,
    target: int = 1000,
    name: str = "demo",
    checkpoints: tuple[int, ...] = (),
    end: str | None = None,
    nan_at: tuple[int, ...] = (),
    t0: float = T0,
    dt: float = 0.1,
) -> Path:
    """A run directory with a real events.jsonl (and checkpoint files with manifests)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / rundir.CONFIG_FILE).write_text(DEMO_CONFIG.read_text())
    with ev.EventWriter(run_dir / rundir.EVENTS) as w:
        w.write(
            ev.RunStart(
                run_id="r1",
                pid=999_999,
                config_path=str(DEMO_CONFIG),
                start_step=0,
                target_step=target,
                world_size=1,
                device="cpu",
                versions={},
                run_name=name,
                recon_loss="mrstft",
                checkpoint_every=100,
                val_every=100,
                milestone_every=200,
            ),
            t=t0,
        )
        for s in range(1, steps + 1):
            g = float("nan") if s in nan_at else 50.0 - s * 0.01
            w.write(step_event(s, g=g), t=t0 + s * dt)
            if s in checkpoints:
                path = write_checkpoint(run_dir, s)
                w.write(
                    ev.Checkpoint(step=s, path=str(path), bytes=path.stat().st_size, sha256="-"),
                    t=t0 + s * dt,
                )
        if end is not None:
            w.write(
                ev.RunEnd(step=steps, status=end, reason="test", exit_code=0),
                t=t0 + (steps + 1) * dt,
            )
    return run_dir


def write_checkpoint(run_dir: Path, step: int, size: int = 4096) -> Path:
    """A checkpoint file plus its manifest, as the trainer leaves them."""
    pt, man = rundir.checkpoint_paths(run_dir, step)
    pt.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    pt.write_bytes(data)
    m = rundir.Manifest(
        step=step,
        epoch=0,
        created=time.time(),
        milestone=False,
        files=(rundir.ManifestFile(pt.name, size, hashlib.sha256(data).hexdigest()),),
    )
    man.write_text(m.to_json())
    return pt


def append_steps(run_dir: Path, first: int, last: int, t0: float | None = None) -> None:
    t0 = time.time() if t0 is None else t0
    with ev.EventWriter(run_dir / rundir.EVENTS) as w:
        for s in range(first, last + 1):
            w.write(step_event(s), t=t0 + (s - first) * 0.01)


def screen_text(pilot: Pilot) -> str:
    """What the terminal shows right now, as plain text."""
    strips = pilot.app.screen._compositor.render_strips()
    return "\n".join(s.text for s in strips)


async def until(pilot: Pilot, pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Let the app run until ``pred()`` holds (False after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await pilot.pause(0.05)
    return pred()


async def until_text(pilot: Pilot, text: str, timeout: float = 10.0) -> bool:
    return await until(pilot, lambda: text in screen_text(pilot), timeout)


def run(coro) -> None:
    asyncio.run(coro)
