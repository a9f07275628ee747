"""The training loop: set up, alternating D/G steps, validate, checkpoint, stop on signal.

One ``Trainer`` per process; under torchrun every rank runs one, and only rank 0 writes the
event log, samples and checkpoints. Everything that exact resume needs (weights, optimizer
and scheduler states, AMP scaler, RNG states, sampler position) is checkpointed together.

The parts live in their own modules: start-up (phases, precision, data, networks, loader)
in trainer.train.startup, where a run starts from in trainer.train.resume, the one training step in
trainer.train.step, validation and its reports in trainer.train.evaluation, checkpoint saves in
trainer.train.saving, the event log and the run's storage failure in trainer.train.runlog. None of
them holds a reference to the Trainer (see trainer.train.startup).
"""

from __future__ import annotations

import logging
import os
import platform
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from trainer.checkpointing import lineage
from trainer.checkpointing import store as ckpt
from trainer.checkpointing.loadtest import CHECKPOINT_FORMAT
from trainer.checkpointing.rng import capture_rng_state, restore_rng_state
from trainer.config.build import to_dict
from trainer.config.schema import Config
from trainer.config.yamlfile import dump
from trainer.data import ResumableBatchSampler
from trainer.events import schema as ev
from trainer.events.writer import EventWriteError
from trainer.losses import ReconstructionLoss
from trainer.models.discriminators import Discriminators
from trainer.models.generator import Generator
from trainer.rundir.checkpoints import CheckpointInfo
from trainer.rundir.history import RunHistory, fresh_start_refusal, run_history
from trainer.rundir.layout import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EVENTS,
    SAMPLES_DIR,
    CheckpointError,
    atomic_write_text,
    checkpoint_paths,
)
from trainer.rundir.lock import RunLock, RunLocked
from trainer.train import distributed as dist_mod
from trainer.train import resume as resume_mod
from trainer.train import startup
from trainer.train.errors import StorageError, TrainerError, storage
from trainer.train.evaluation import Evaluation
from trainer.train.ledger import BestTracker, Verdict
from trainer.train.runlog import EventLog
from trainer.train.saving import Checkpointer
from trainer.train.signals import StopFlag, StopRequested, signal_name
from trainer.train.startup import HOLD_ENV
from trainer.train.step import StepResult, StepTotals, TrainStep
from trainer.train.validation import Validator

__all__ = ["HOLD_ENV", "StopFlag", "StorageError", "Trainer", "TrainerError", "train"]

log = logging.getLogger("nal-train")


@dataclass
class Position:
    """Where training stands: the next step to run is ``step + 1``."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already consumed


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "schema": str(ev.SCHEMA_VERSION),
    }


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, DDP) else getattr(m, "_orig_mod", m)


class Trainer:
    """A HiFi-GAN training run in one run directory."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        config_path: str,
        *,
        resume: str | None = None,
        target_step: int | None = None,
        new_branch: bool = False,
        stop: StopFlag | None = None,
        init_from: str | None = None,
        init_generator_only: bool = False,
        init_optimizers: bool = False,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.config_path = config_path
        self.resume = resume
        self.new_branch = new_branch
        self._target_given = target_step is not None
        self.target_step = target_step or cfg.train.max_steps
        self.stop = stop if stop is not None else StopFlag()
        self.pos = Position()
        self.events = EventLog(self.stop)
        self.lock: RunLock | None = None
        self.dist = dist_mod.DistInfo()
        self.is_main = True
        self._start_step = 0
        self._run_started = False
        self._pending_alerts: list[startup.Alert] = []
        # Lineage (see resume.start_branch): what this run directory held before this start,
        # the branch this process writes, and what it moved where.
        self._history: RunHistory | None = None
        self._plan: lineage.BranchPlan | None = None
        self._resume_info: CheckpointInfo | None = None
        self._resume_state: dict[str, Any] | None = None
        self._skipped: resume_mod.Skipped = []
        self._moved_aside: str | None = None
        self._verify = ckpt.VerifyCache()
        self._cfg_dict = to_dict(cfg)
        self._model_cfg = lineage.model_config(self._cfg_dict)
        # Fine-tuning (--init-from): the source checkpoint, and its state until loaded.
        self.init_from = init_from
        self.init_generator_only = init_generator_only
        self.init_optimizers = init_optimizers
        self._init_info: CheckpointInfo | None = None
        self._init_state: dict[str, Any] | None = None
        # The best-checkpoint ledger's judge (None: no ledger), shared by the evaluation
        # (set up with the data) and the checkpointer.
        best = cfg.checkpoint.best
        self._best = BestTracker(best, self.run_dir, self._verify) if best is not None else None
        self.checkpointer = Checkpointer(
            cfg, self.run_dir, self._model_cfg, self._verify, self._best, self.events
        )

    # The parts built by setup(), under the names callers (tests, benches) use.
    @property
    def g_raw(self) -> Generator:
        return self.nets.g_raw

    @property
    def d_raw(self) -> Discriminators:
        return self.nets.d_raw

    @property
    def opt_g(self) -> torch.optim.Optimizer:
        return self.nets.opt_g

    @property
    def opt_d(self) -> torch.optim.Optimizer:
        return self.nets.opt_d

    @property
    def sched_g(self) -> torch.optim.lr_scheduler.LRScheduler:
        return self.nets.sched_g

    @property
    def sched_d(self) -> torch.optim.lr_scheduler.LRScheduler:
        return self.nets.sched_d

    @property
    def sampler(self) -> ResumableBatchSampler:
        return self.data.sampler

    # ------------------------------------------------------------------ set up
    def setup(self) -> None:
        """Start-up in phases; a stop request is honoured at each phase boundary."""
        cfg = self.cfg
        self.stop.install()  # no-op when the CLI installed it before importing torch
        self.dist, self.device = dist_mod.init_from_env(cfg.train.device)
        self.is_main = self.dist.is_main
        phases = startup.Phases(self.stop, self.dist)
        phases.enter("opening the run directory")
        if self.is_main:
            self._open_run_dir()

        startup.check_best_metric(cfg, self.config_path)
        if self.init_from:
            self._init_info, self._init_state = resume_mod.choose_init(
                cfg, self.init_from, self.init_generator_only, self.init_optimizers
            )
        startup.seed_everything(cfg.train.seed)
        self.precision = startup.resolve_precision(cfg, self.device)
        phases.enter("checking the corpus")
        self.data = startup.build_data(cfg, self.config_path, self.dist, self.device, phases.tick)
        self._pending_alerts += self.data.alerts
        self.batches_per_epoch = len(self.data.sampler)
        phases.enter("building the models")
        self._setup_models()
        start_from = self._load_resume() if self.resume else None
        if self._init_state is not None:
            assert self._init_info is not None
            resume_mod.load_init(
                cfg,
                self.nets,
                self._init_info,
                self._init_state,
                self.init_generator_only,
                self.init_optimizers,
            )
            self._init_state = None
        if self.is_main:
            self._plan, self._moved_aside, moved_back = resume_mod.start_branch(
                self.run_dir, self._resume_info
            )
            if moved_back is not None:
                self._resume_info = moved_back
                start_from = str(moved_back.path)
            if self._best is not None:
                self._best.restore(self._resume_info)
            config_file = self.run_dir / CONFIG_FILE
            with storage("write the resolved config", config_file):
                atomic_write_text(config_file, dump(cfg))
        self._start_step = self.pos.step
        self.loader = startup.build_loader(cfg, self.data.train_set, self.data.sampler, self.device)
        self.agree = dist_mod.StopAgreement(self.dist)
        devices = dist_mod.gather_strings(str(self.device), self.dist)
        phases.enter("starting to train")
        if self.is_main:
            self._emit_run_start(start_from, devices)

    def _open_run_dir(self) -> None:
        """Lock, PID file, fresh-start refusal, event log, leftovers of killed writes, resume choice."""
        self.lock = RunLock(self.run_dir)
        try:
            with storage("lock the run directory and write trainer.pid in", self.run_dir):
                self.lock.acquire()
        except RunLocked as e:
            raise TrainerError(str(e), ev.EXIT_LOCKED) from None
        self._history = run_history(self.run_dir)
        if self._history is not None and not self.resume and not self.new_branch:
            # Refused before anything is written: the existing run's log stays as it was.
            raise TrainerError(fresh_start_refusal(self.run_dir, self._history), ev.EXIT_USAGE)
        with storage("create", self.run_dir / CHECKPOINTS_DIR):
            for sub in (CHECKPOINTS_DIR, SAMPLES_DIR):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self.events.open(self.run_dir / EVENTS)
        with storage("clean leftovers of interrupted writes in", self.run_dir):
            self._pending_alerts += startup.report_leftovers(self.run_dir)
        if self.resume:
            # The full load test runs before the corpus and the models are built.
            self._resume_info, self._resume_state, self._skipped = resume_mod.choose_resume(
                self.cfg, self.run_dir, self.resume, self._verify
            )

    def _setup_models(self) -> None:
        """The networks and optimizers, the reconstruction loss, the evaluation, the step."""
        cfg, mel = self.cfg, self.data.mel
        self.nets, alert = startup.build_nets(cfg, self.device, self.precision, self.dist)
        if alert is not None:
            self._pending_alerts.append(alert)
        self.recon = ReconstructionLoss(cfg.loss, mel_fn=mel).to(self.device)
        # precision.autocast, not a bound method of self: a Trainer <-> Validator cycle would
        # leave the Trainer (and its DDP reducer's threads) to be collected at interpreter
        # exit, where a torchrun rank then aborts ("terminate called without an active
        # exception").
        validator = Validator(
            cfg, self.run_dir, mel, self.recon, self.device, self.precision.autocast, storage
        )
        d = self.data
        self.evaluation = Evaluation(validator, d.val_set, d.unseen_set, self._best, self.events)
        self._step = TrainStep(cfg, self.nets, self.precision, mel, self.recon, self.device)

    # ------------------------------------------------------------------ resume
    def last_step(self) -> int:
        """The run's real last step: where this process got to once it wrote run_start,
        else what the run directory already held (a start that failed before training)."""
        if self._run_started:
            return self.pos.step
        held = self._history.last_step if self._history is not None else 0
        return max(self.pos.step, held)

    def _load_resume(self) -> str:
        # Ranks > 0 resume from the checkpoint rank 0 chose (same path; a shared filesystem).
        chosen = str(self._resume_info.path) if self._resume_info is not None else ""
        path = dist_mod.gather_strings(chosen, self.dist)[0]
        if not self.is_main:
            self._resume_info, self._resume_state = resume_mod.resolve_on_rank(
                self.cfg, self.run_dir, path
            )
        info, state = self._resume_info, self._resume_state
        assert info is not None and state is not None
        errors = (CheckpointError, KeyError, TypeError, ValueError, RuntimeError)
        with resume_mod.loads_into_model("resume", info.path, errors):
            self.load_state(state)
        self._resume_state = None  # the models hold it now
        # It is on disk already: no re-save at the end.
        self.checkpointer.last_step = self.pos.step
        # Every rank has read the file before rank 0 may move it (see resume.start_branch).
        dist_mod.gather_strings("loaded", self.dist)
        log.info("resumed from %s (step %d, epoch %d)", info.path, self.pos.step, self.pos.epoch)
        return str(info.path)

    def state_dict(self) -> dict[str, Any]:
        n = self.nets
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self._cfg_dict,
            "generator": _unwrap(n.g_raw).state_dict(),
            "discriminators": _unwrap(n.d_raw).state_dict(),
            "opt_g": n.opt_g.state_dict(),
            "opt_d": n.opt_d.state_dict(),
            "sched_g": n.sched_g.state_dict(),
            "sched_d": n.sched_d.state_dict(),
            "scaler": self.precision.scaler.state_dict(),
            "step": self.pos.step,
            "epoch": self.pos.epoch,
            "batch_in_epoch": self.pos.batch_in_epoch,
            "world_size": self.dist.world_size,
            "target_step": self.target_step,
            "rng": capture_rng_state(),
        }

    def load_state(self, s: dict[str, Any]) -> None:
        n = self.nets
        n.g_raw.load_state_dict(s["generator"])
        n.d_raw.load_state_dict(s["discriminators"])
        n.opt_g.load_state_dict(s["opt_g"])
        n.opt_d.load_state_dict(s["opt_d"])
        n.sched_g.load_state_dict(s["sched_g"])
        n.sched_d.load_state_dict(s["sched_d"])
        if s.get("scaler"):
            self.precision.scaler.load_state_dict(s["scaler"])
        batch = int(s["batch_in_epoch"])
        saved_world = int(s.get("world_size", 1))
        if saved_world != self.dist.world_size:
            # Same samples consumed, re-expressed in batches of the new world size.
            batch = batch * saved_world // self.dist.world_size
        self.pos = Position(int(s["step"]), int(s["epoch"]), batch)
        if not self._target_given and "target_step" in s:
            # A resume without --target-step keeps the run's own target, not the config's.
            self.target_step = int(s["target_step"])
        restore_rng_state(s["rng"])

    # ------------------------------------------------------------------ events
    def _end(self, status: str, reason: str, code: int) -> None:
        """Write run_end if the log still takes it (never raises)."""
        self.events.end(self.last_step(), status, reason, code)

    def _emit_run_start(self, resumed_from: str | None, devices: list[str]) -> None:
        cfg = self.cfg
        self.events.emit(
            ev.RunStart(
                run_id=uuid.uuid4().hex[:12],
                pid=os.getpid(),
                config_path=str(self.config_path),
                start_step=self.pos.step,
                target_step=self.target_step,
                world_size=self.dist.world_size,
                device=str(self.device),
                versions=_versions(),
                resumed_from=resumed_from,
                run_name=self.run_dir.name,
                backend=self.dist.backend,
                rank_devices=devices,
                batch_size=cfg.train.batch_size,
                segment_size=cfg.audio.segment_size,
                sample_rate=cfg.audio.sample_rate,
                recon_loss=cfg.loss.recon,
                log_every=cfg.log.log_every,
                val_every=cfg.log.val_every,
                checkpoint_every=cfg.checkpoint.every,
                milestone_every=cfg.checkpoint.milestone_every,
                precision=self.precision.name,
                branch=self._plan.branch if self._plan is not None else "",
                parent_step=self._resume_info.step if self._resume_info is not None else None,
                moved_aside=self._moved_aside,
                init_from=str(self._init_info.path) if self._init_info is not None else None,
                init_from_sha256=self._init_info.sha256 if self._init_info is not None else None,
                init_from_step=self._init_info.step if self._init_info is not None else None,
                init_generator_only=self.init_generator_only and self._init_info is not None,
            )
        )
        self._run_started = True
        for bad, reason in self._skipped:
            self.events.emit(
                ev.Alert(
                    kind=ev.ALERT_RESUME_FALLBACK,
                    step=self.pos.step,
                    message=f"skipped checkpoint {bad.path.name}: {reason}",
                )
            )
        for kind, msg in self._pending_alerts:
            self.events.emit(ev.Alert(kind=kind, step=self.pos.step, message=msg))

    # ------------------------------------------------------------------ one step
    def train_step(self, batch: dict[str, torch.Tensor]) -> StepResult:
        """One D update then one G update (see trainer.train.step); the figures stay on the device."""
        return self._step(batch)

    # ------------------------------------------------------------------ validation
    def validate(self) -> Verdict | None:
        """Validate the current weights (see trainer.train.evaluation); returns the ledger's
        verdict on the validation set's score (None without ``checkpoint.best``)."""
        return self.evaluation.run(_unwrap(self.nets.g_raw), self.pos.step)

    # ------------------------------------------------------------------ checkpoint
    def save(self) -> None:
        """Checkpoint the current state (see trainer.train.saving), with this step's validation."""
        validation, verdict = self.evaluation.at(self.pos.step)
        self.checkpointer.save(
            self.pos.step,
            self.pos.epoch,
            self.nets,
            self.state_dict,
            self._plan,
            validation=validation,
            verdict=verdict,
        )

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        """Train to the target step or until stopped; returns the process exit code."""
        cfg = self.cfg
        log_every = cfg.log.log_every
        per_step = cfg.train.batch_size * self.dist.world_size
        totals = StepTotals(self.device)
        consec_bad = torch.zeros((), device=self.device)
        status, reason, code = ev.STATUS_COMPLETED, "target step reached", ev.EXIT_OK
        if self.pos.step >= self.target_step:
            log.info("already at step %d >= target %d", self.pos.step, self.target_step)
        done = self.pos.step >= self.target_step or self.events.failure is not None
        while not done:
            self.data.sampler.set_epoch(self.pos.epoch)
            self.data.sampler.set_start(self.pos.batch_in_epoch)
            for batch in self.loader:
                t0 = time.perf_counter()
                out = self.train_step(batch)
                self.pos.step += 1
                self.pos.batch_in_epoch += 1
                totals.add(out)
                consec_bad = (consec_bad + out.bad) * out.bad
                step = self.pos.step
                logging_step = step % log_every == 0 or step == self.target_step
                if logging_step or self.device.type == "cpu":
                    # The one host sync: every logging step (and every step on CPU, where a
                    # sync costs nothing), so non-finite steps are reported promptly.
                    vals = totals.means() if logging_step else None
                    n_bad = int(consec_bad.item())
                    totals.seconds += time.perf_counter() - t0
                    if n_bad and (vals is not None or self.device.type == "cpu"):
                        self.events.emit(
                            ev.Alert(
                                kind=ev.ALERT_NONFINITE,
                                step=step,
                                level="error",
                                message=f"non-finite loss or gradient: update skipped "
                                f"({n_bad} consecutive)",
                            )
                        )
                    if n_bad >= cfg.train.max_nonfinite_steps:
                        status, code = ev.STATUS_FAILED, ev.EXIT_NONFINITE
                        reason = (
                            f"{n_bad} consecutive non-finite steps "
                            f"(limit {cfg.train.max_nonfinite_steps})"
                        )
                        log.error(reason)
                        self.stop.request(-1)
                    if vals is not None:
                        self._log_step(vals, totals.seconds / totals.steps, per_step)
                        totals.reset()
                else:
                    totals.seconds += time.perf_counter() - t0
                stopping = self.agree(self.stop.set)
                if self.is_main and code == ev.EXIT_OK and self.events.failure is None:
                    try:
                        self._periodic(step, consec_bad)
                    except StorageError as e:
                        self.events.fail(e)
                        # Alone, stop at this step; ranks stop together at the next one.
                        stopping = stopping or not self.dist.enabled
                if stopping:
                    self.stop.signum = self.stop.signum or -1  # agreed: another rank's signal
                if stopping or step >= self.target_step:
                    done = True
                    break
            if self.pos.batch_in_epoch >= self.batches_per_epoch:
                self.pos.epoch += 1
                self.pos.batch_in_epoch = 0
                self.nets.sched_g.step()
                self.nets.sched_d.step()
        self.agree.drain()
        failure = self.events.failure
        if failure is not None:
            status, reason, code = ev.STATUS_FAILED, str(failure), ev.EXIT_STORAGE
            self._save_after_failure(failure)
        elif self.stop.set and code == ev.EXIT_OK:
            status = ev.STATUS_STOPPED
            reason = f"stopped by {signal_name(self.stop.signum)}"
            log.info("stopping at step %d (%s)", self.pos.step, reason)
        if self.is_main and code == ev.EXIT_OK and self.checkpointer.last_step != self.pos.step:
            self._save()
        self._end(status, reason, code)
        log.info("run end at step %d: %s (%s)", self.pos.step, status, reason)
        return code

    def _save(self) -> None:
        """save(), with a failed write reported as one StorageError naming the checkpoint."""
        path = checkpoint_paths(self.run_dir, self.pos.step)[0]
        with storage("save checkpoint", path, during_save=True):
            self.save()

    def _save_after_failure(self, failure: StorageError) -> None:
        """After a failed sample or log write, still try to keep the steps trained so far.

        Not after a failed checkpoint save (the disk just refused one), nor when this session
        trained nothing. The save is atomic, so on a full disk it fails without touching the
        last verified checkpoint.
        """
        if (
            not self.is_main
            or failure.during_save
            or self.pos.step <= self._start_step
            or self.checkpointer.last_step == self.pos.step
        ):
            return
        try:
            self._save()
        except TrainerError as e:
            log.warning("no final checkpoint: %s", e)
        else:
            log.info("saved a final checkpoint at step %d", self.pos.step)

    def _periodic(self, step: int, consec_bad: torch.Tensor) -> None:
        cfg = self.cfg
        verdict = self.validate() if step % cfg.log.val_every == 0 else None
        # A score that enters the best K is checkpointed now: the ledger only ever names
        # weights that are on disk, and the weights validated are the weights saved.
        if step % cfg.checkpoint.every == 0 or (verdict is not None and verdict.enters):
            n_bad = int(consec_bad.item())
            if n_bad:
                self.events.emit(
                    ev.Alert(
                        kind=ev.ALERT_CHECKPOINT_SKIPPED,
                        step=step,
                        message=f"checkpoint skipped: the last {n_bad} step(s) were non-finite",
                    )
                )
            else:
                self._save()
        me = cfg.checkpoint.milestone_every
        if me and step % me == 0:
            self.events.emit(
                ev.Milestone(step=step, name=f"step {step:,}", message=f"reached step {step:,}")
            )

    def _log_step(self, vals: dict[str, float], step_time: float, per_step: int) -> None:
        """The step record of a logging step: ``vals`` are StepTotals.means()."""
        self.events.emit(
            ev.Step(
                step=self.pos.step,
                epoch=self.pos.epoch,
                g=vals["g"],
                d=vals["d"],
                stft=vals["recon"],
                adv=vals["adv"],
                fm=vals["fm"],
                recon=self.cfg.loss.recon,
                lr_g=float(f"{self.nets.opt_g.param_groups[0]['lr']:.6g}"),
                lr_d=float(f"{self.nets.opt_d.param_groups[0]['lr']:.6g}"),
                grad_norm_g=vals["grad_norm_g"],
                grad_norm_d=vals["grad_norm_d"],
                step_time=round(step_time, 6),
                samples_per_s=round(per_step / step_time, 3) if step_time > 0 else 0.0,
            )
        )

    def close(self, restore_signals: bool = True) -> None:
        # Handlers stay in place until everything is closed: a late second signal must not
        # interrupt the run_end record or the lock release. Each part is released even when
        # an earlier one fails (a full or failing disk), so no stale PID file is left.
        self.events.close()
        if self.lock is not None:
            try:
                self.lock.release()
            except OSError as e:
                log.warning("cannot release the run lock in %s: %s", self.run_dir, e.strerror)
        try:
            dist_mod.shutdown()
        except Exception as e:  # noqa: BLE001 - teardown: report, never mask the exit code
            log.warning("process group shutdown failed: %s", e)
        if restore_signals:
            self.stop.uninstall()


def train(
    cfg: Config,
    run_dir: Path,
    config_path: str,
    *,
    resume: str | None = None,
    target_step: int | None = None,
    restore_signals: bool = True,
    new_branch: bool = False,
    stop: StopFlag | None = None,
    init_from: str | None = None,
    init_generator_only: bool = False,
    init_optimizers: bool = False,
) -> int:
    """Run a training job end to end; returns the exit code (see trainer.events.EXIT_*).

    The CLI passes ``restore_signals=False``: a process that is exiting keeps ignoring
    further SIGTERM/SIGINT instead of dying mid-teardown. It also passes the ``stop`` flag
    it installed before importing torch, so a signal during start-up is not lost.
    """
    t = Trainer(
        cfg,
        run_dir,
        config_path,
        resume=resume,
        target_step=target_step,
        new_branch=new_branch,
        stop=stop,
        init_from=init_from,
        init_generator_only=init_generator_only,
        init_optimizers=init_optimizers,
    )
    try:
        t.setup()
        return t.run()
    except StopRequested as e:
        reason = f"stopped by {signal_name(e.signum)} during start-up"
        log.warning("%s; nothing was trained", reason)
        t._end(ev.STATUS_STOPPED, reason, ev.EXIT_OK)
        return ev.EXIT_OK
    except TrainerError as e:
        log.error("%s", e)
        t._end(ev.STATUS_FAILED, str(e), e.exit_code)
        return e.exit_code
    except EventWriteError as e:  # the log refused run_start or an early record
        log.error("storage error: %s", e)
        t._end(ev.STATUS_FAILED, str(e), ev.EXIT_STORAGE)
        return ev.EXIT_STORAGE
    except Exception as e:
        log.exception("training failed")
        t._end(ev.STATUS_FAILED, f"{type(e).__name__}: {e}", ev.EXIT_FAILED)
        return ev.EXIT_FAILED
    finally:
        t.close(restore_signals)
