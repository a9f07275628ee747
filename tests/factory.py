"""The one factory of test data: event records, event logs, run directories, checkpoints,
and sessions that launch the fake trainer. Every test tier builds its data here."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from trainer.events import schema as ev
from trainer.events.codec import encode
from trainer.events.parse import parse_line, parse_lines
from trainer.events.writer import EventWriter
from trainer.rundir.layout import (
    ABANDONED_DIR,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EVENTS,
    checkpoint_paths,
)
from trainer.rundir.manifest import Manifest, ManifestFile

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
# Named nal-train so that its command line is "our trainer" (nal_tui.core.control.proc).
FAKE_TRAINER = ROOT / "tests" / "fakes" / "nal-train"
T0 = 1_700_000_000.0


# ---------------------------------------------------------------------------- records


def step_event(step: int, g: float = 50.0, d: float = 3.0, **kw: Any) -> ev.Step:
    vals: dict[str, Any] = dict(
        step=step, epoch=step // 100, g=g, d=d, stft=1.0, adv=2.5, fm=4.5, recon="mrstft",
        lr_g=2e-4, lr_d=2e-4, step_time=0.1, samples_per_s=40.0,
    )  # fmt: skip
    vals.update(kw)
    return ev.Step(**vals)


def run_start(start: int = 0, target: int = 1000, **kw: Any) -> ev.RunStart:
    vals: dict[str, Any] = dict(
        run_id="r1", pid=999_999, config_path=str(DEMO_CONFIG), start_step=start,
        target_step=target, world_size=1, device="cpu", versions={}, run_name="demo",
        recon_loss="mrstft", checkpoint_every=100, val_every=100, milestone_every=200,
    )  # fmt: skip
    vals.update(kw)
    return ev.RunStart(**vals)


def run_end(step: int, status: str = ev.STATUS_COMPLETED, code: int = 0) -> ev.RunEnd:
    return ev.RunEnd(step=step, status=status, reason="test", exit_code=code)


def record(event: ev.Event, t: float = T0) -> dict[str, Any]:
    """A record as a reader gets it (encoded, parsed and validated)."""
    return parse_line(encode(event.to_record(t)))


def _with(event: ev.Event, t: float, fields: dict[str, Any]) -> dict[str, Any]:
    """``event``'s record plus fields its dataclass may not have yet (schema additions),
    encoded and parsed back as a reader gets it."""
    rec = event.to_record(t)
    rec.update({k: v for k, v in fields.items() if v is not None})
    return parse_line(encode(rec))


def val_record(
    step: int,
    *,
    metrics: dict[str, Any] | None = None,
    set: str | None = None,
    losses: dict[str, Any] | None = None,
    samples: Iterable[str] = ("samples/a_gen.wav",),
    duration: float = 1.0,
    t: float = T0,
    **extra: Any,
) -> dict[str, Any]:
    """A ``val`` record with validation metrics by set (issue 10's additions)."""
    e = ev.Val(step=step, losses=losses if losses is not None else {"mel_l1": 0.5, "mrstft": 2.0},
               samples=list(samples), duration=duration)  # fmt: skip
    return _with(e, t, {"metrics": metrics, "set": set, **extra})


def checkpoint_record(
    step: int, *, best: bool | None = None, best_steps: list[int] | None = None,
    t: float = T0, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """A ``checkpoint`` record, with the best-checkpoint ledger fields when given."""
    e = ev.Checkpoint(step=step, path=f"checkpoints/ckpt_{step:08d}.pt", bytes=1, sha256="-")
    return _with(e, t, {"best": best, "best_steps": best_steps, **extra})


def records(events: Iterable[ev.Event], t0: float = T0, dt: float = 0.1) -> list[dict]:
    return [record(e, t0 + i * dt) for i, e in enumerate(events)]


def steps(first: int, last: int, **kw: Any) -> list[ev.Step]:
    return [step_event(s, **kw) for s in range(first, last + 1)]


# ---------------------------------------------------------------------------- files


def write_events(
    path: Path, events: Iterable[ev.Event], t0: float = T0, dt: float = 0.1, index: bool = True
) -> Path:
    """Append events through the trainer's own EventWriter (JSONL + events.idx)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with EventWriter(path, index=index) as w:
        for i, e in enumerate(events):
            w.write(e, t=t0 + i * dt)
    return path


def append_raw(path: Path, data: bytes) -> None:
    """Bytes straight into the log (garbled lines, torn writes, hostile content)."""
    with open(path, "ab") as f:
        f.write(data)


def write_checkpoint(
    run_dir: Path, step: int, size: int = 4096, aside: str | None = None, **man: Any
) -> Path:
    """A checkpoint file plus its manifest, as the trainer leaves them; ``aside``: moved
    to ``checkpoints/abandoned/<aside>/`` (an abandoned branch)."""
    pt, mp = checkpoint_paths(run_dir, step)
    if aside is not None:
        d = run_dir / CHECKPOINTS_DIR / ABANDONED_DIR / aside
        pt, mp = d / pt.name, d / mp.name
    pt.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    pt.write_bytes(data)
    m = Manifest(
        step=step,
        epoch=0,
        created=man.pop("created", time.time()),
        milestone=man.pop("milestone", False),
        files=(ManifestFile(pt.name, size, hashlib.sha256(data).hexdigest()),),
    )
    mp.write_text(m.to_json())
    return pt


def corrupt(path: Path) -> None:
    """Flip the first byte: same size, another hash (writing a fixed byte would leave a
    random file unchanged once in 256 runs)."""
    data = path.read_bytes()
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])


def write_run(
    run_dir: Path,
    n_steps: int,
    *,
    target: int = 1000,
    name: str = "demo",
    checkpoints: tuple[int, ...] = (),
    end: str | None = None,
    nan_at: tuple[int, ...] = (),
    t0: float = T0,
    dt: float = 0.1,
    index: bool = True,
) -> Path:
    """A run directory: config.yaml, events.jsonl (+ events.idx), checkpoints."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(DEMO_CONFIG.read_text())
    evs: list[ev.Event] = [run_start(target=target, run_name=name)]
    for s in range(1, n_steps + 1):
        g = float("nan") if s in nan_at else 50.0 - s * 0.01
        evs.append(step_event(s, g=g))
        if s in checkpoints:
            p = write_checkpoint(run_dir, s)
            evs.append(
                ev.Checkpoint(step=s, path=str(p.relative_to(run_dir)), bytes=p.stat().st_size,
                              sha256="-")
            )  # fmt: skip
    if end is not None:
        evs.append(run_end(n_steps, end))
    write_events(run_dir / EVENTS, evs, t0, dt, index=index)
    return run_dir


def append_steps(run_dir: Path, first: int, last: int, t0: float | None = None) -> None:
    t0 = time.time() if t0 is None else t0
    write_events(run_dir / EVENTS, steps(first, last), t0, 0.01)


# ---------------------------------------------------------------------------- processes


def fake_base() -> tuple[list[str], str]:
    return [sys.executable, str(FAKE_TRAINER)], "fake"


def fake_session(run_dir: Path | None, logs_dir: Path, mode: str = "normal"):
    """A RunSession that launches the fake trainer (same PID file and events)."""
    from nal_tui.core.control.session import RunSession

    env = dict(os.environ, FAKE_TRAINER_MODE=mode, PYTHONUNBUFFERED="1")
    return RunSession(run_dir, logs_dir=logs_dir, trainer_base=fake_base(), env=env)


def kill_started() -> None:
    """SIGKILL whatever the tests' sessions started (their own sessions: pgid == pid)."""
    from nal_tui.core.control.proc import CHILDREN

    for pid in CHILDREN.pids():
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 10
    while CHILDREN.pids() and time.monotonic() < deadline:
        CHILDREN.reap()
        time.sleep(0.05)


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05) -> bool:
    """Poll ``pred`` until it holds (generous ceilings: a loaded 2-core machine is slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    p = run_dir / EVENTS
    if not p.exists():
        return []
    return parse_lines(p.read_bytes().split(b"\n")[:-1])[0]


def tree_digest(root: Path) -> str:
    """One digest of every file under ``root``, names and bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def spawn_sleeper(seconds: int = 300) -> subprocess.Popen:
    """A live ``sleep`` process, returned once it has exec'd: until then it still shows
    its parent's command line, which would make identity tests race."""
    import psutil

    proc = subprocess.Popen(["sleep", str(seconds)])
    deadline = time.monotonic() + 60
    while True:
        try:
            if psutil.Process(proc.pid).cmdline()[:1] == ["sleep"]:
                return proc
        except psutil.Error:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("sleep did not start within 60 s")
        time.sleep(0.005)
