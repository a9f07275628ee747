"""The run's event log as the trainer writes it, the run's storage failure, and the
cadence and content of the ``step`` record.

Rank 0 opens the log; a process without one emits nothing. A write that fails is the run's
storage failure: recorded once, said once, and the run is asked to stop. ``emit`` never
raises, so a full disk ends the run cleanly with exit 6 instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import platform
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from trainer.config.schema import Config
from trainer.events import schema as ev
from trainer.events.writer import EventWriteError, EventWriter
from trainer.train.errors import StorageError, storage
from trainer.train.signals import StopFlag
from trainer.train.step import StepResult, StepTotals

if TYPE_CHECKING:  # types only: the run log does not depend on how a run starts
    from trainer.train.distributed import DistInfo
    from trainer.train.resume import Origin

log = logging.getLogger("nal-train")


class EventLog:
    """``events.jsonl`` for one trainer process, and the first storage failure of the run."""

    def __init__(self, stop: StopFlag) -> None:
        self.stop = stop
        self.writer: EventWriter | None = None
        self.failure: StorageError | None = None
        self._write_failed = False

    def open(self, path: Path) -> None:
        with storage("open the event log", path):
            self.writer = EventWriter(path)

    def emit(self, event: ev.Event) -> None:
        """Append an event; a failing log is a storage failure that stops the run."""
        if self.writer is None or self._write_failed:
            return
        try:
            self.writer.write(event)
        except EventWriteError as e:
            self._write_failed = True
            self.fail(StorageError(str(e)))

    def fail(self, err: StorageError) -> None:
        """Record the run's storage failure (the first one), say it once, and stop."""
        if self.failure is None:
            self.failure = err
            log.error("storage error: %s; stopping", err)
        self.stop.request(-1)

    def end(self, step: int, status: str, reason: str, code: int) -> None:
        """Write run_end if the log still takes it (never raises)."""
        if self.writer is None or self.writer.closed:
            return
        try:
            self.writer.write(ev.RunEnd(step=step, status=status, reason=reason, exit_code=code))
        except EventWriteError:
            pass  # already reported; a torn line was cut back by the writer

    def sync(self) -> None:
        if self.writer is not None:
            self.writer.sync()

    def close(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.close()
        except OSError as e:
            if self.failure is None:
                log.warning("%s", e)


class StepLog:
    """The ``step`` record's cadence and content: loss means since the last logging step
    (every ``log.log_every`` steps and at the target), their step time and throughput."""

    def __init__(self, cfg: Config, device: torch.device, world_size: int, events: EventLog):
        self.every = cfg.log.log_every
        self.recon = cfg.loss.recon
        self.per_step = cfg.train.batch_size * world_size  # samples per step, all ranks
        # On a CPU a host sync costs nothing: every step syncs, so streaks are said promptly.
        self.sync_every_step = device.type == "cpu"
        self.events = events
        self.totals = StepTotals(device)

    def due(self, step: int, target_step: int) -> bool:
        return step % self.every == 0 or step == target_step

    def syncs(self, step: int, target_step: int) -> bool:
        """Whether the host looks at this step's figures (the one sync of a step)."""
        return self.sync_every_step or self.due(step, target_step)

    def add(self, result: StepResult) -> None:
        self.totals.add(result)

    def add_time(self, seconds: float) -> None:
        self.totals.seconds += seconds

    def write(self, step: int, epoch: int, lr_g: float, lr_d: float) -> None:
        """The step record of a logging step (a host sync), then a fresh window."""
        vals = self.totals.means()
        step_time = self.totals.seconds / self.totals.steps
        self.events.emit(
            ev.Step(
                step=step,
                epoch=epoch,
                g=vals["g"],
                d=vals["d"],
                stft=vals["recon"],
                adv=vals["adv"],
                fm=vals["fm"],
                recon=self.recon,
                lr_g=float(f"{lr_g:.6g}"),
                lr_d=float(f"{lr_d:.6g}"),
                grad_norm_g=vals["grad_norm_g"],
                grad_norm_d=vals["grad_norm_d"],
                step_time=round(step_time, 6),
                samples_per_s=round(self.per_step / step_time, 3) if step_time > 0 else 0.0,
            )
        )
        self.totals.reset()


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "schema": str(ev.SCHEMA_VERSION),
    }


def run_start_event(
    cfg: Config,
    run_dir: Path,
    config_path: str,
    start_step: int,
    target_step: int,
    dist: DistInfo,
    device: str,
    precision: str,
    origin: Origin,
    init_generator_only: bool,
    resumed_from: str | None,
    devices: list[str],
) -> ev.RunStart:
    """The ``run_start`` record: what runs, where from, with which settings."""
    o = origin
    return ev.RunStart(
        run_id=uuid.uuid4().hex[:12],
        pid=os.getpid(),
        config_path=str(config_path),
        start_step=start_step,
        target_step=target_step,
        world_size=dist.world_size,
        device=device,
        versions=_versions(),
        resumed_from=resumed_from,
        run_name=run_dir.name,
        backend=dist.backend,
        rank_devices=devices,
        batch_size=cfg.train.batch_size,
        segment_size=cfg.audio.segment_size,
        sample_rate=cfg.audio.sample_rate,
        recon_loss=cfg.loss.recon,
        log_every=cfg.log.log_every,
        val_every=cfg.log.val_every,
        checkpoint_every=cfg.checkpoint.every,
        milestone_every=cfg.checkpoint.milestone_every,
        precision=precision,
        branch=o.plan.branch if o.plan is not None else "",
        parent_step=o.resumed.step if o.resumed is not None else None,
        moved_aside=o.moved_aside,
        init_from=str(o.init.path) if o.init is not None else None,
        init_from_sha256=o.init.sha256 if o.init is not None else None,
        init_from_step=o.init.step if o.init is not None else None,
        init_generator_only=init_generator_only and o.init is not None,
    )
