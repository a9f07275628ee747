"""The training loop: set up, alternating D/G steps, validate, checkpoint, stop on signal.

One ``Trainer`` per process; under torchrun every rank runs one, and only rank 0 writes the
event log, samples and checkpoints. The Trainer holds its components and runs the loop;
each component owns its cadence and its records: the step log (trainer.train.runlog), the
non-finite policy (trainer.train.nonfinite), the evaluation (trainer.train.evaluation), the
checkpointer (trainer.train.saving). Start-up is trainer.train.startup, where a run starts
from trainer.train.resume, the training state's format trainer.checkpointing.format. No
component holds a reference to the Trainer (see trainer.train.startup on why).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from trainer.checkpointing.format import Position, load_state, unwrap
from trainer.checkpointing.store import VerifyCache
from trainer.config.schema import Config
from trainer.config.yamlfile import dump
from trainer.events import schema as ev
from trainer.events.writer import EventWriteError
from trainer.losses import ReconstructionLoss
from trainer.rundir.history import fresh_start_refusal, run_history
from trainer.rundir.layout import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EVENTS,
    SAMPLES_DIR,
    CheckpointError,
    atomic_write_text,
)
from trainer.rundir.lock import RunLock, RunLocked
from trainer.tools import tbmirror
from trainer.train import distributed as dist_mod
from trainer.train import resume as resume_mod
from trainer.train import startup
from trainer.train.errors import StorageError, TrainerError, storage
from trainer.train.evaluation import Evaluation
from trainer.train.ledger import BestTracker
from trainer.train.nonfinite import NonFinitePolicy
from trainer.train.recovery import Recovery, learning_rates, scale_learning_rates
from trainer.train.runlog import EventLog, StepLog, run_start_event
from trainer.train.saving import Checkpointer
from trainer.train.signals import StopFlag, StopRequested, signal_name
from trainer.train.startup import HOLD_ENV, Data, Nets, Precision
from trainer.train.step import TrainStep
from trainer.train.validation import Validator

__all__ = ["HOLD_ENV", "StopFlag", "StorageError", "Trainer", "TrainerError", "train"]

log = logging.getLogger("nal-train")


@dataclass(frozen=True)
class StartOptions:
    """How this start was asked for (the CLI's flags)."""

    resume: str | None = None  # latest, best or a checkpoint path
    new_branch: bool = False
    init_from: str | None = None
    init_generator_only: bool = False
    init_optimizers: bool = False


@dataclass
class Outcome:
    """How the run ends: its run_end status, reason and the process exit code."""

    status: str = ev.STATUS_COMPLETED
    reason: str = "target step reached"
    code: int = ev.EXIT_OK

    @property
    def ok(self) -> bool:
        return self.code == ev.EXIT_OK


class Trainer:
    """A HiFi-GAN training run in one run directory."""

    # configs
    cfg: Config
    run_dir: Path
    config_path: str
    options: StartOptions
    target_step: int
    # the process
    stop: StopFlag
    dist: dist_mod.DistInfo
    device: torch.device
    lock: RunLock | None
    # components (the event log from the start; the rest built by setup())
    events: EventLog
    verify: VerifyCache
    best: BestTracker | None  # the best-checkpoint ledger's judge (None: no ledger)
    precision: Precision
    data: Data
    nets: Nets
    train_step: TrainStep
    evaluation: Evaluation
    nonfinite: NonFinitePolicy
    recovery: Recovery  # train.recover: going back to a healthy checkpoint in-process
    step_log: StepLog
    checkpointer: Checkpointer
    loader: DataLoader
    agree: dist_mod.StopAgreement
    # training state
    origin: resume_mod.Origin
    pos: Position
    outcome: Outcome
    _target_given: bool  # --target-step given: a resume keeps it, not the run's own
    _start_step: int  # the step this process started training from
    _run_started: bool  # run_start is written
    _pending_alerts: list[startup.Alert]  # said once run_start is written

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
        self.options = StartOptions(
            resume, new_branch, init_from, init_generator_only, init_optimizers
        )
        self._target_given = target_step is not None
        self.target_step = target_step or cfg.train.max_steps
        self.stop = stop if stop is not None else StopFlag()
        self.dist = dist_mod.DistInfo()
        self.lock = None
        self.events = EventLog(self.stop)
        self.verify = VerifyCache()
        best = cfg.checkpoint.best
        self.best = BestTracker(best, self.run_dir, self.verify) if best is not None else None
        self.origin = resume_mod.Origin()
        self.pos = Position()
        self.outcome = Outcome()
        self._start_step = 0
        self._run_started = False
        self._pending_alerts = []
        self.mirror: tbmirror.TensorBoardMirror | None = None  # log.tensorboard, rank 0

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    # ------------------------------------------------------------------ set up
    def setup(self) -> None:
        """Start-up in phases; a stop request is honoured at each phase boundary."""
        cfg, o = self.cfg, self.options
        self.stop.install()  # no-op when the CLI installed it before importing torch
        self.dist, self.device = dist_mod.init_from_env(cfg.train.device)
        phases = startup.Phases(self.stop, self.dist)
        phases.enter("opening the run directory")
        if self.is_main:
            self._open_run_dir()

        startup.check_best_metric(cfg, self.config_path)
        startup.check_tensorboard(cfg, self.config_path)
        if o.init_from:
            self.origin.init, self.origin.init_state = resume_mod.choose_init(
                cfg, o.init_from, o.init_generator_only, o.init_optimizers
            )
        startup.set_threads(cfg.train.threads)
        startup.seed_everything(cfg.train.seed)
        self.precision = startup.resolve_precision(cfg, self.device)
        phases.enter("checking the corpus")
        self.data = startup.build_data(cfg, self.config_path, self.dist, self.device, phases.tick)
        self._pending_alerts += self.data.alerts
        phases.enter("building the models")
        self._build_components()
        start_from = self._load_resume() if o.resume else None
        if self.origin.init_state is not None:
            assert self.origin.init is not None
            resume_mod.init_weights(
                cfg,
                self.nets,
                self.origin.init,
                self.origin.init_state,
                o.init_generator_only,
                o.init_optimizers,
            )
            self.origin.init_state = None
        if self.is_main:
            start_from = self._start_branch(start_from)
        self._start_step = self.pos.step
        self.loader = startup.build_loader(cfg, self.data.train_set, self.data.sampler, self.device)
        self.agree = dist_mod.StopAgreement(self.dist)
        devices = dist_mod.gather_strings(str(self.device), self.dist)
        phases.enter("starting to train")
        if self.is_main:
            self._emit_run_start(start_from, devices)
            if cfg.log.tensorboard:
                self.mirror = startup.open_mirror(self.run_dir, self.events, self.pos.step)

    def _open_run_dir(self) -> None:
        """Lock, PID file, fresh-start refusal, event log, leftovers of killed writes, resume choice."""
        self.lock = RunLock(self.run_dir)
        try:
            with storage("lock the run directory and write trainer.pid in", self.run_dir):
                self.lock.acquire()
        except RunLocked as e:
            raise TrainerError(str(e), ev.EXIT_LOCKED) from None
        history = self.origin.history = run_history(self.run_dir)
        if history is not None and not self.options.resume and not self.options.new_branch:
            # Refused before anything is written: the existing run's log stays as it was.
            raise TrainerError(fresh_start_refusal(self.run_dir, history), ev.EXIT_USAGE)
        with storage("create", self.run_dir / CHECKPOINTS_DIR):
            for sub in (CHECKPOINTS_DIR, SAMPLES_DIR):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self.events.open(self.run_dir / EVENTS)
        with storage("clean leftovers of interrupted writes in", self.run_dir):
            self._pending_alerts += startup.report_leftovers(self.run_dir)
        if self.options.resume:
            # The full load test runs before the corpus and the models are built.
            o = self.origin
            o.resumed, o.resume_state, o.skipped = resume_mod.choose_resume(
                self.cfg, self.run_dir, self.options.resume, self.verify
            )

    def _build_components(self) -> None:
        """The networks and optimizers, the step, and the parts with a cadence."""
        cfg, mel, d = self.cfg, self.data.mel, self.data
        self.nets, alert = startup.build_nets(cfg, self.device, self.precision, self.dist)
        if alert is not None:
            self._pending_alerts.append(alert)
        recon = ReconstructionLoss(cfg.loss, mel_fn=mel).to(self.device)
        # precision.autocast, not a bound method of self: a Trainer <-> Validator cycle would
        # leave the Trainer (and its DDP reducer's threads) to be collected at interpreter
        # exit, where a torchrun rank then aborts ("terminate called without an active
        # exception"). No component may hold the Trainer or one of its bound methods.
        validator = Validator(
            cfg, self.run_dir, mel, recon, self.device, self.precision.autocast, storage
        )
        self.evaluation = Evaluation(
            validator, d.val_set, d.unseen_set, self.best, self.events, cfg.log.val_every
        )
        self.train_step = TrainStep(cfg, self.nets, self.precision, mel, recon, self.device)
        self.nonfinite = NonFinitePolicy(cfg.train.max_nonfinite_steps, self.device, self.events)
        self.recovery = Recovery(cfg.train.recover, self.dist.world_size)
        self.step_log = StepLog(cfg, self.device, self.dist.world_size, self.events)
        self.checkpointer = Checkpointer(
            cfg,
            self.run_dir,
            self.verify,
            self.best,
            self.events,
            self.nets,
            self.precision.scaler,
            self.evaluation,
            self.nonfinite,
            self.dist.world_size,
        )

    # ------------------------------------------------------------------ resume
    def last_step(self) -> int:
        """The run's real last step: where this process got to once it wrote run_start,
        else what the run directory already held (a start that failed before training)."""
        if self._run_started:
            return self.pos.step
        history = self.origin.history
        return max(self.pos.step, history.last_step if history is not None else 0)

    def _load_resume(self) -> str:
        o = self.origin
        # Ranks > 0 resume from the checkpoint rank 0 chose (same path; a shared filesystem).
        chosen = str(o.resumed.path) if o.resumed is not None else ""
        path = dist_mod.gather_strings(chosen, self.dist)[0]
        if not self.is_main:
            o.resumed, o.resume_state = resume_mod.resolve_on_rank(self.cfg, self.run_dir, path)
        info, state = o.resumed, o.resume_state
        assert info is not None and state is not None
        errors = (CheckpointError, KeyError, TypeError, ValueError, RuntimeError)
        with resume_mod.loads_into_model("resume", info.path, errors):
            self.load_state(state)
        o.resume_state = None  # the models hold it now
        # It is on disk already: no re-save at the end.
        self.checkpointer.last_step = self.pos.step
        # Every rank has read the file before rank 0 may move it (see resume.start_branch).
        dist_mod.gather_strings("loaded", self.dist)
        log.info("resumed from %s (step %d, epoch %d)", info.path, self.pos.step, self.pos.epoch)
        return str(info.path)

    def _start_branch(self, start_from: str | None) -> str | None:
        """Rank 0: the branch this start writes, the ledger restored, the resolved config."""
        o = self.origin
        o.plan, o.moved_aside, moved_back = resume_mod.start_branch(self.run_dir, o.resumed)
        self.checkpointer.plan = o.plan
        if moved_back is not None:
            o.resumed = moved_back
            start_from = str(moved_back.path)
        if self.best is not None:
            self.best.restore(o.resumed)
        config_file = self.run_dir / CONFIG_FILE
        with storage("write the resolved config", config_file):
            atomic_write_text(config_file, dump(self.cfg))
        return start_from

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's training state (trainer.checkpointing.format)."""
        self.pos, saved_target = load_state(
            state, self.nets, self.precision.scaler, self.dist.world_size
        )
        if not self._target_given and saved_target is not None:
            # A resume without --target-step keeps the run's own target, not the config's.
            self.target_step = saved_target

    # ------------------------------------------------------------------ events
    def _end(self, status: str, reason: str, code: int) -> None:
        """Write run_end if the log still takes it (never raises)."""
        self.events.end(self.last_step(), status, reason, code)

    def _emit_run_start(self, resumed_from: str | None, devices: list[str]) -> None:
        o = self.origin
        start = run_start_event(
            self.cfg,
            self.run_dir,
            self.config_path,
            self.pos.step,
            self.target_step,
            self.dist,
            str(self.device),
            self.precision.name,
            o,
            self.options.init_generator_only,
            resumed_from,
            devices,
        )
        # The learning rates in force (a resume's come from its optimizer state).
        lr_g, lr_d = (opt.param_groups[0]["lr"] for opt in (self.nets.opt_g, self.nets.opt_d))
        self.events.emit(replace(start, lr_g=lr_g, lr_d=lr_d))
        self._run_started = True
        for bad, reason in o.skipped:
            self.events.emit(
                ev.Alert(
                    kind=ev.ALERT_RESUME_FALLBACK,
                    step=self.pos.step,
                    message=f"skipped checkpoint {bad.path.name}: {reason}",
                )
            )
        for kind, msg in self._pending_alerts:
            self.events.emit(ev.Alert(kind=kind, step=self.pos.step, message=msg))

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        """Train to the target step or until stopped; returns the process exit code."""
        if self.pos.step >= self.target_step:
            log.info("already at step %d >= target %d", self.pos.step, self.target_step)
        done = self.pos.step >= self.target_step or self.events.failure is not None
        while not done:
            for batch in self._epoch():
                t0 = time.perf_counter()
                if self._train_one(batch, t0):
                    continue  # went back to a checkpoint (train.recover): nothing is due
                stopping = self._after_step()
                if stopping or self.pos.step >= self.target_step:
                    done = True
                    break
            self._end_epoch_if_done()
        self.agree.drain()
        self._finish()
        self._end(self.outcome.status, self.outcome.reason, self.outcome.code)
        log.info(
            "run end at step %d: %s (%s)", self.pos.step, self.outcome.status, self.outcome.reason
        )
        return self.outcome.code

    def _epoch(self) -> DataLoader:
        """The loader, from where this epoch stands (a resume continues mid-epoch)."""
        self.data.sampler.set_epoch(self.pos.epoch)
        self.data.sampler.set_start(self.pos.batch_in_epoch)
        return self.loader

    def _train_one(self, batch: dict[str, torch.Tensor], t0: float) -> bool:
        """One step, its figures kept on the device; the host looks only when the step log
        says so (a logging step, or every step on a CPU). True when it ended in a recovery."""
        out = self.train_step(batch)
        self.pos.step += 1
        self.pos.batch_in_epoch += 1
        self.step_log.add(out)
        self.nonfinite.observe(out.bad)
        step = self.pos.step
        if not self.step_log.syncs(step, self.target_step):
            self.step_log.add_time(time.perf_counter() - t0)
            return False
        failure = self.nonfinite.check(step)
        self.step_log.add_time(time.perf_counter() - t0)
        if self.step_log.due(step, self.target_step):
            lr_g = self.nets.opt_g.param_groups[0]["lr"]
            lr_d = self.nets.opt_d.param_groups[0]["lr"]
            self.step_log.write(step, self.pos.epoch, lr_g, lr_d)
        if failure is not None and self.outcome.ok:
            if self._recover("nonfinite", step - self.nonfinite.last_streak + 1):
                return True
            self.outcome = Outcome(ev.STATUS_FAILED, failure, ev.EXIT_NONFINITE)
            self.stop.request(-1)
        return False

    def _recover(self, trigger: str, first_bad: int) -> bool:
        """train.recover: back to the newest healthy checkpoint before ``first_bad`` on a new
        branch, both learning rates scaled, the data where it had got to; False when the
        policy does not allow it (or no checkpoint qualifies): the run then ends as before."""
        rec = self.recovery
        if not self.is_main or not rec.allows(trigger):
            return False
        found = rec.healthy_checkpoint(self.cfg, self.run_dir, first_bad, self.verify)
        if found is None:
            log.error("recovery: no healthy checkpoint before step %d to go back to", first_bad)
            return False
        info, state = found
        policy = rec.policy
        assert policy is not None
        from_step, data = self.pos.step, (self.pos.epoch, self.pos.batch_in_epoch)
        in_force = learning_rates(self.nets)
        with storage("go back to", info.path):
            self.load_state(state)
            plan, aside, _ = resume_mod.start_branch(self.run_dir, info)
        # The data goes on from where it was: the failed steps' batches do not come back at
        # the same steps. The schedules catch up with the epochs the data went through.
        for _ in range(data[0] - self.pos.epoch):
            self.nets.sched_g.step()
            self.nets.sched_d.step()
        self.pos.epoch, self.pos.batch_in_epoch = data
        lr_g, lr_d = scale_learning_rates(self.nets, in_force, policy.lr_scale)
        self.checkpointer.plan, self.checkpointer.last_step = plan, self.pos.step
        if self.best is not None:
            self.best.restore(info)
        self.nonfinite.reset()
        rec.count += 1
        optim = self.cfg.optim
        self.cfg = replace(self.cfg, optim=replace(
            optim, lr_g=optim.lr_g * policy.lr_scale, lr_d=optim.lr_d * policy.lr_scale
        ))  # fmt: skip
        config_file = self.run_dir / CONFIG_FILE
        with storage("write the resolved config", config_file):
            atomic_write_text(config_file, dump(self.cfg))
        ckpt = str(info.path.relative_to(self.run_dir))
        self.events.emit(ev.Recovery(
            step=self.pos.step, from_step=from_step, trigger=trigger, checkpoint=ckpt,
            lr_g=lr_g, lr_d=lr_d, recoveries=rec.count, max_recoveries=policy.max_recoveries,
            branch=plan.branch, moved_aside=aside,
        ))  # fmt: skip
        msg = (
            f"recovery {rec.count}/{policy.max_recoveries} after {trigger} at step {from_step}: "
            f"back to step {self.pos.step} ({ckpt}), learning rates now {lr_g:.3g} (G) and "
            f"{lr_d:.3g} (D)"
        )
        log.warning("%s", msg)
        self.events.emit(
            ev.Alert(kind=ev.ALERT_RECOVERY, step=self.pos.step, message=msg, level="warning")
        )
        return True

    def _after_step(self) -> bool:
        """Validation, checkpoint and milestone when due (rank 0); whether every rank agrees
        to stop now."""
        stopping = self.agree(self.stop.set)
        if self.is_main and self.outcome.ok and self.events.failure is None:
            step = self.pos.step
            try:
                if self.evaluation.should_validate(step):
                    self.evaluation.run(unwrap(self.nets.g_raw), step)
                self.checkpointer.maybe_save(self.pos, self.target_step)
                self.checkpointer.milestone(step)
            except StorageError as e:
                self.events.fail(e)
                # Alone, stop at this step; ranks stop together at the next one.
                stopping = stopping or not self.dist.enabled
        if stopping:
            self.stop.signum = self.stop.signum or -1  # agreed: another rank's signal
        return stopping

    def _end_epoch_if_done(self) -> None:
        if self.pos.batch_in_epoch >= len(self.data.sampler):
            self.pos.epoch += 1
            self.pos.batch_in_epoch = 0
            self.nets.sched_g.step()
            self.nets.sched_d.step()

    def _finish(self) -> None:
        """The run's end status, and its last checkpoint (none after a non-finite end)."""
        failure = self.events.failure
        if failure is not None:
            self.outcome = Outcome(ev.STATUS_FAILED, str(failure), ev.EXIT_STORAGE)
            self._save_after_failure(failure)
        elif self.stop.set and self.outcome.ok:
            self.outcome = Outcome(ev.STATUS_STOPPED, f"stopped by {signal_name(self.stop.signum)}")
            log.info("stopping at step %d (%s)", self.pos.step, self.outcome.reason)
        if self.is_main and self.outcome.ok:
            self.checkpointer.maybe_save(self.pos, self.target_step, last=True)

    def _save_after_failure(self, failure: StorageError) -> None:
        """After a failed sample or log write, still try to keep the steps trained so far.

        Not after a failed checkpoint save (the disk just refused one), nor when this session
        trained nothing. The save is atomic, so on a full disk it fails without touching the
        last verified checkpoint.
        """
        if not self.is_main or failure.during_save or self.pos.step <= self._start_step:
            return
        try:
            saved = self.checkpointer.maybe_save(self.pos, self.target_step, last=True)
        except TrainerError as e:
            log.warning("no final checkpoint: %s", e)
        else:
            if saved:
                log.info("saved a final checkpoint at step %d", self.pos.step)

    def close(self, restore_signals: bool = True) -> None:
        # Handlers stay in place until everything is closed: a late second signal must not
        # interrupt the run_end record or the lock release. Each part is released even when
        # an earlier one fails (a full or failing disk), so no stale PID file is left.
        startup.close_mirror(self.mirror)
        self.mirror = None
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
