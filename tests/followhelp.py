"""Helpers for the follower tests: step lines, appending, a collecting consumer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nal_tui.core.feed.follow import FollowStats
from trainer.events import schema as ev
from trainer.events.codec import encode

T0 = 1_700_000_000.0


def line(n: int, t: float | None = None) -> bytes:
    e = ev.Step(
        step=n,
        epoch=1,
        g=1.0,
        d=2.0,
        stft=0.5,
        adv=1.0,
        fm=3.0,
        recon="mrstft",
        lr_g=2e-4,
        lr_d=2e-4,
        step_time=0.1,
        samples_per_s=10.0,
    )
    return encode(e.to_record(T0 + n if t is None else t))


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class Collector:
    def __init__(self) -> None:
        self.batches: list[tuple[list[dict], FollowStats]] = []
        self.cond = threading.Condition()

    def __call__(self, recs: list[dict], stats: FollowStats) -> None:
        with self.cond:
            self.batches.append((recs, stats))
            self.cond.notify_all()

    @property
    def steps(self) -> list[int]:
        return [r["step"] for recs, _ in self.batches for r in recs]

    def wait_steps(self, n: int, timeout: float = 60.0) -> list[int]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.steps) < n and time.monotonic() < deadline:
                self.cond.wait(0.05)
        return self.steps


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
