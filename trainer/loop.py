"""The training loop: set up, alternating D/G steps, validate, checkpoint, stop on signal.

One ``Trainer`` per process; under torchrun every rank runs one, and only rank 0 writes the
event log, samples and checkpoints. Everything that exact resume needs (weights, optimizer
and scheduler states, AMP scaler, RNG states, sampler position) is checkpointed together.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from trainer import checkpoint as ckpt
from trainer import config as config_mod
from trainer import distributed as dist_mod
from trainer import events as ev
from trainer import lineage, rundir
from trainer import metrics as metrics_mod
from trainer.audio import AudioError, MelSpectrogram
from trainer.config import Config
from trainer.corpus import RULE_SHORT_CLIPS, RULE_UNREADABLE
from trainer.data import (
    Corpus,
    DataError,
    ResumableBatchSampler,
    TrainDataset,
    ValidationSet,
    collate,
)
from trainer.demo_corpus import ensure_demo_corpus
from trainer.ledger import BestTracker, Verdict
from trainer.losses import ReconstructionLoss, hifigan_discriminator_loss, hifigan_generator_loss
from trainer.models import Discriminators, Generator, build_models
from trainer.rollback import StepRollback
from trainer.signals import StopFlag, StopRequested, signal_name
from trainer.validation import SetResult, Validator

__all__ = ["StopFlag", "StorageError", "Trainer", "TrainerError", "train"]

log = logging.getLogger("nal-train")


# Tests only: wait at this start-up phase (its "start-up: <phase>" log line is written
# first) until a stop request arrives, so a test can signal at a chosen phase.
HOLD_ENV = "NAL_TRAIN_TEST_HOLD"


class TrainerError(RuntimeError):
    """A failure with a user-facing message and the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = ev.EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StorageError(TrainerError):
    """A write to the run directory failed (disk full, I/O error): exit 6."""

    def __init__(self, message: str, during_save: bool = False) -> None:
        super().__init__(message, ev.EXIT_STORAGE)
        self.during_save = during_save


@contextlib.contextmanager
def _storage(op: str, path: str | os.PathLike[str], during_save: bool = False) -> Any:
    """Turn an OSError while writing ``path`` into one StorageError line naming both."""
    try:
        yield
    except ev.EventWriteError as e:
        raise StorageError(str(e), during_save) from None
    except OSError as e:
        raise StorageError(f"cannot {op} {path}: {e.strerror or e}", during_save) from None


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


def _finite(d: dict[str, float]) -> dict[str, float]:
    """The finite entries (a manifest records numbers only)."""
    return {k: float(v) for k, v in d.items() if math.isfinite(v)}


def _json_floats(d: dict[str, float]) -> dict[str, Any]:
    """Non-finite values as the strings events.float_field maps back (JSON has no NaN)."""
    return {k: (v if math.isfinite(v) else str(v).lower()) for k, v in d.items()}


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
        self.writer: ev.EventWriter | None = None
        self.lock: rundir.RunLock | None = None
        self.dist = dist_mod.DistInfo()
        self.is_main = True
        self._last_val_step = -1
        self._last_ckpt_step = -1
        self._start_step = 0
        self._run_started = False
        self._failure: StorageError | None = None
        self._log_failed = False
        self._pending_alerts: list[tuple[str, str]] = []
        # Lineage (see _start_branch): what this run directory held before this start, the
        # branch this process writes, and what it moved where.
        self._history: rundir.RunHistory | None = None
        self._plan: lineage.BranchPlan | None = None
        self._resume_info: rundir.CheckpointInfo | None = None
        self._resume_state: dict[str, Any] | None = None
        self._skipped: list[tuple[rundir.CheckpointInfo, str]] = []
        self._moved_aside: str | None = None
        self._verify = ckpt.VerifyCache()
        self._cfg_dict = config_mod.to_dict(cfg)
        self._model_cfg = lineage.model_config(self._cfg_dict)
        # Fine-tuning (--init-from): the source checkpoint, and its state until loaded.
        self.init_from = init_from
        self.init_generator_only = init_generator_only
        self.init_optimizers = init_optimizers
        self._init_info: rundir.CheckpointInfo | None = None
        self._init_state: dict[str, Any] | None = None
        # Validation: the last validation's metrics by set (for the manifest of a checkpoint
        # saved at that step), and the best-checkpoint ledger's judge (None: no ledger).
        self._last_val: dict[str, dict[str, float]] = {}
        self._verdict: Verdict | None = None
        self._metric_notes: set[str] = set()
        best = cfg.checkpoint.best
        self._best = BestTracker(best, self.run_dir, self._verify) if best is not None else None

    # ------------------------------------------------------------------ set up
    def setup(self) -> None:
        """Start-up in phases; a stop request is honoured at each phase boundary."""
        cfg = self.cfg
        self.stop.install()  # no-op when the CLI installed it before importing torch
        self.dist, self.device = dist_mod.init_from_env(cfg.train.device)
        self.is_main = self.dist.is_main
        self._phase("opening the run directory")
        if self.is_main:
            self._open_run_dir()

        self._check_best_metric()
        if self.init_from:
            self._choose_init()
        self._seed_everything(cfg.train.seed)
        self._setup_precision()
        self._phase("checking the corpus")
        self._setup_data()
        self._phase("building the models")
        self._setup_models()
        start_from = self._load_resume() if self.resume else None
        if self._init_state is not None:
            self._load_init()
        if self.is_main:
            start_from = self._start_branch() or start_from
            if self._best is not None:
                self._best.restore(self._resume_info)
            config_file = self.run_dir / rundir.CONFIG_FILE
            with _storage("write the resolved config", config_file):
                rundir.atomic_write_text(config_file, config_mod.dump(cfg))
        self._start_step = self.pos.step
        self._setup_loader()
        self.agree = dist_mod.StopAgreement(self.dist)
        devices = dist_mod.gather_strings(str(self.device), self.dist)
        self._phase("starting to train")
        if self.is_main:
            self._emit_run_start(start_from, devices)

    def _open_run_dir(self) -> None:
        """Lock, PID file, fresh-start refusal, event log, leftovers of killed writes, resume choice."""
        self.lock = rundir.RunLock(self.run_dir)
        try:
            with _storage("lock the run directory and write trainer.pid in", self.run_dir):
                self.lock.acquire()
        except rundir.RunLocked as e:
            raise TrainerError(str(e), ev.EXIT_LOCKED) from None
        self._history = rundir.run_history(self.run_dir)
        if self._history is not None and not self.resume and not self.new_branch:
            # Refused before anything is written: the existing run's log stays as it was.
            raise TrainerError(
                rundir.fresh_start_refusal(self.run_dir, self._history), ev.EXIT_USAGE
            )
        with _storage("create", self.run_dir / rundir.CHECKPOINTS_DIR):
            for sub in (rundir.CHECKPOINTS_DIR, rundir.SAMPLES_DIR):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        with _storage("open the event log", self.run_dir / rundir.EVENTS):
            self.writer = ev.EventWriter(self.run_dir / rundir.EVENTS)
        with _storage("clean leftovers of interrupted writes in", self.run_dir):
            self._clean_leftovers()
        if self.resume:
            # The full load test runs before the corpus and the models are built.
            self._choose_resume()

    def _phase(self, name: str) -> None:
        """A start-up phase boundary: say so, and leave now if a stop was asked for.

        Under torchrun the ranks decide together (a collective), so every rank leaves at
        the same phase and none waits in a collective for one that is gone.
        """
        log.info("start-up: %s", name)
        if os.environ.get(HOLD_ENV) == name:
            log.info("start-up: holding at '%s' until a stop request (%s)", name, HOLD_ENV)
            while not self.stop.wait(0.05):
                pass
        stop = self.stop.set
        if self.dist.enabled:
            stop = dist_mod.any_rank(stop, self.dist)
        if stop:
            raise StopRequested(self.stop.signum if self.stop.set else -1)

    def _tick(self) -> None:
        # Inside a long phase (corpus checks, preloading): only a lone process may leave
        # mid-phase; ranks wait for the next phase boundary to agree.
        if not self.dist.enabled:
            self.stop.check()

    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _setup_precision(self) -> None:
        t = self.cfg.train
        cuda = self.device.type == "cuda"
        self.precision = t.precision
        if t.precision == "fp16" and not cuda:
            log.warning("train.precision fp16 needs CUDA; using fp32 on %s", self.device)
            self.precision = "fp32"
        if t.precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
            log.warning("this GPU has no bf16 support; using fp16 with a GradScaler")
            self.precision = "fp16"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = t.tf32
            torch.backends.cudnn.allow_tf32 = t.tf32
            torch.backends.cudnn.benchmark = True

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _setup_data(self) -> None:
        d, a = self.cfg.data, self.cfg.audio
        try:
            if d.demo and self.is_main:
                ensure_demo_corpus(Path(d.corpus_dir), a.sample_rate)
            if d.demo and self.dist.enabled:
                torch.distributed.barrier()
            self.corpus = Corpus.load(self.cfg, self.dist.world_size, self._tick)
            self._report_corpus_warnings()
            self.train_set = TrainDataset(self.corpus, tick=self._tick)
            self.val_set = ValidationSet(self.corpus, tick=self._tick)
            self.unseen_set = (
                ValidationSet(self.corpus, tick=self._tick, unseen=True)
                if self.corpus.unseen
                else None
            )
            self.sampler = ResumableBatchSampler(
                len(self.train_set),
                self.cfg.train.batch_size,
                self.cfg.train.seed,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
            )
        except DataError as e:
            msg = str(e) if str(e).startswith("[") else f"[corpus] {e}"
            raise TrainerError(
                f"data error {msg} (config {self.config_path})", ev.EXIT_USAGE
            ) from None
        except AudioError as e:  # a file that passed the header rules but cannot be decoded
            raise TrainerError(f"data error [{RULE_UNREADABLE}] {e}", ev.EXIT_USAGE) from None
        self.batches_per_epoch = len(self.sampler)
        self.mel = MelSpectrogram(a).to(self.device)

    def _report_corpus_warnings(self) -> None:
        report = self.corpus.report
        if report is None or not self.is_main:
            return
        for f in report.warnings:
            log.warning("corpus: [%s] %s", f.rule, f.message)
            kind = ev.ALERT_SHORT_CLIPS if f.rule == RULE_SHORT_CLIPS else ev.ALERT_CORPUS
            self._pending_alerts.append((kind, f.message))

    def _setup_loader(self) -> None:
        workers = self.cfg.data.num_workers
        cuda = self.device.type == "cuda"
        self.loader = DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            collate_fn=collate,
            num_workers=workers,
            pin_memory=cuda,
            persistent_workers=workers > 0,
        )

    def _setup_models(self) -> None:
        cfg = self.cfg
        g, d = build_models(cfg)
        self.g_raw: Generator = g.to(self.device)
        self.d_raw: Discriminators = d.to(self.device)
        fused = self._fused_ok()
        o = cfg.optim
        self.opt_g = torch.optim.AdamW(
            self.g_raw.parameters(),
            o.lr_g,
            betas=tuple(o.betas),
            weight_decay=o.weight_decay,
            fused=fused,
        )
        self.opt_d = torch.optim.AdamW(
            self.d_raw.parameters(),
            o.lr_d,
            betas=tuple(o.betas),
            weight_decay=o.weight_decay,
            fused=fused,
        )
        self.fused = fused
        self._rollback_d = StepRollback(self.opt_d, self.d_raw)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.opt_g, gamma=o.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, gamma=o.lr_decay)
        self.recon = ReconstructionLoss(cfg.loss, mel_fn=self.mel).to(self.device)
        # No bound method of self in there: a Trainer <-> Validator cycle would leave the
        # Trainer (and its DDP reducer's threads) to be collected at interpreter exit, where
        # a torchrun rank then aborts ("terminate called without an active exception").
        amp, dev = self.amp_dtype, self.device.type
        autocast = (
            (lambda: torch.autocast(dev, dtype=amp)) if amp is not None else contextlib.nullcontext
        )
        self.validator = Validator(
            cfg, self.run_dir, self.mel, self.recon, self.device, autocast, _storage
        )
        self.g: nn.Module = self.g_raw
        self.d: nn.Module = self.d_raw
        self._score_fn = self.d_raw.score
        if cfg.train.compile:
            self._try_compile()
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g = DDP(self.g, device_ids=ids)
            # Every MPD/MSD output feeds the loss, so no unused-parameter search is needed.
            self.d = DDP(self.d, device_ids=ids)

    def _fused_ok(self) -> bool:
        # Fused AdamW skips a step on device when ``found_inf`` is set: no host sync needed to
        # drop a non-finite update. With fp16 the GradScaler owns that flag instead.
        return self.device.type in ("cpu", "cuda") and self.precision != "fp16"

    def _try_compile(self) -> None:
        try:
            g = torch.compile(self.g_raw)
            d = torch.compile(self.d_raw)
            seg = self.cfg.audio.segment_size
            with torch.no_grad():
                mel = torch.zeros(
                    1, self.cfg.audio.n_mels, seg // self.cfg.audio.hop_length, device=self.device
                )
                wav = g(mel)
                d(wav, wav)
            self.g, self.d = g, d
            self._score_fn = torch.compile(self.d_raw.score)
        except Exception as e:  # noqa: BLE001 - any backend failure falls back to eager
            msg = f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); using eager mode"
            log.warning(msg)
            self._pending_alerts.append((ev.ALERT_COMPILE_FALLBACK, msg))

    # ------------------------------------------------------------------ resume
    def last_step(self) -> int:
        """The run's real last step: where this process got to once it wrote run_start,
        else what the run directory already held (a start that failed before training)."""
        if self._run_started:
            return self.pos.step
        held = self._history.last_step if self._history is not None else 0
        return max(self.pos.step, held)

    def _clean_leftovers(self) -> None:
        try:
            left = ckpt.clean_leftovers(self.run_dir)
        except rundir.CheckpointError as e:  # a garbled move journal: a person must look
            raise TrainerError(str(e), ev.EXIT_FAILED) from None
        for src, dst in left.moved:
            log.info("finished an interrupted move: %s -> %s", src, dst)
        for p in left.recovered:
            log.info("finished the interrupted save of %s (both files were complete)", p.name)
        for p in left.removed:
            log.info("removed a temp file of an unfinished write: %s", p)
        for p, what in left.kept_aside:
            msg = (
                f"{p.name} had no manifest; kept aside in {left.kept_aside_dir}/, not "
                f"deleted ({what})"
            )
            log.warning("%s", msg)
            self._pending_alerts.append((ev.ALERT_CHECKPOINT_KEPT_ASIDE, msg))

    def _choose_resume(self) -> None:
        """Pick the checkpoint (full load test; --resume latest falls back past failures)."""
        assert self.resume is not None
        test = ckpt.LoadTest(self.cfg)
        try:
            if str(self.resume) in ("latest", "best"):
                # Better candidates that fail the load test are skipped, each with an alert.
                info, self._skipped = ckpt.find_resume_checkpoint(self.run_dir, self.resume, test)
            else:
                path = rundir.checkpoint_path_arg(self.run_dir, self.resume)
                if path.exists() and not rundir.is_run_checkpoint(self.run_dir, path):
                    raise TrainerError(
                        f"cannot resume from {path}: it is not a checkpoint of {self.run_dir} "
                        f"(resume from its own run directory instead)",
                        ev.EXIT_NO_CHECKPOINT,
                    )
                info = rundir.resolve_checkpoint(self.run_dir, path, test)
        except rundir.CheckpointError as e:
            msg = str(e) if str(e).startswith("cannot resume") else f"cannot resume: {e}"
            raise TrainerError(msg, ev.EXIT_NO_CHECKPOINT) from None
        assert test.passed is not None and test.passed[0] == info
        for bad, reason in self._skipped:
            log.warning("skipping checkpoint %s: %s", bad.path, reason)
        self._resume_info, self._resume_state = test.passed
        self._verify.trust(info)  # just hashed: retention need not hash it again

    def _load_resume(self) -> str:
        # Ranks > 0 resume from the checkpoint rank 0 chose (same path; a shared filesystem).
        chosen = str(self._resume_info.path) if self._resume_info is not None else ""
        path = dist_mod.gather_strings(chosen, self.dist)[0]
        if not self.is_main:
            test = ckpt.LoadTest(self.cfg)
            try:
                self._resume_info = rundir.resolve_checkpoint(self.run_dir, path, test)
            except rundir.CheckpointError as e:
                raise TrainerError(f"cannot resume: {e}", ev.EXIT_NO_CHECKPOINT) from None
            assert test.passed is not None
            self._resume_state = test.passed[1]
        info, state = self._resume_info, self._resume_state
        assert info is not None and state is not None
        try:
            self.load_state(state)
        except (rundir.CheckpointError, KeyError, TypeError, ValueError, RuntimeError) as e:
            detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise TrainerError(
                f"cannot resume from {info.path}: it does not load into this config's model "
                f"({lineage.clean_text(detail, 200)})",
                ev.EXIT_NO_CHECKPOINT,
            ) from None
        self._resume_state = None  # the models hold it now
        self._last_ckpt_step = self.pos.step  # it is on disk already: no re-save at the end
        # Every rank has read the file before rank 0 may move it (see _start_branch).
        dist_mod.gather_strings("loaded", self.dist)
        log.info("resumed from %s (step %d, epoch %d)", info.path, self.pos.step, self.pos.epoch)
        return str(info.path)

    def _start_branch(self) -> str | None:
        """Keep checkpoints/ one linear chain for this start (see lineage.plan_start).

        Runs after the resume state is loaded into the models, so nothing moves for a start
        that fails. Returns the resumed checkpoint's path when it moved back onto the live
        branch (resuming from an abandoned checkpoint).
        """
        plan = lineage.plan_start(self.run_dir, self._resume_info)
        start, aside = lineage.apply_plan(self.run_dir, plan)
        self._plan = plan
        self._moved_aside = str(aside) if aside is not None else None
        if aside is not None:
            steps = ", ".join(str(c.step) for c in plan.abandon)
            log.info(
                "new branch %s: moved the live checkpoint(s) of step %s aside to %s/",
                plan.branch,
                steps,
                aside,
            )
        if plan.restore:
            log.info(
                "moved checkpoint(s) of step %s back onto the live branch",
                ", ".join(str(c.step) for c in plan.restore),
            )
        if start is not None and plan.restore:
            self._resume_info = start
            return str(start.path)
        return None

    def _choose_init(self) -> None:
        """--init-from: the source checkpoint through the load test (hash, weights_only,
        format, the weights taken and their shapes against this config)."""
        assert self.init_from is not None
        parts = ("generator",) if self.init_generator_only else ("generator", "discriminators")
        if self.init_optimizers:
            parts += ("opt_g",) if self.init_generator_only else ("opt_g", "opt_d")
        test = ckpt.LoadTest(self.cfg, parts=parts)
        src = Path(self.init_from).expanduser()
        try:
            info = rundir.checkpoint_info(src)
        except rundir.CheckpointError as e:
            raise TrainerError(
                f"cannot initialise from {src}: {e}", ev.EXIT_NO_CHECKPOINT
            ) from None
        ok, reason = test(info)
        if not ok or test.passed is None:
            raise TrainerError(
                f"cannot initialise from {info.path}: {reason}", ev.EXIT_NO_CHECKPOINT
            )
        for note in test.notes:
            log.warning("fine-tuning across a model-config difference (same shapes): %s", note)
        self._init_info, self._init_state = test.passed

    def _load_init(self) -> None:
        """Load the source weights (and optimizer moments with --init-optimizers); the
        learning rate, its schedule, the step count and the RNG stay this run's own."""
        info, state = self._init_info, self._init_state
        assert info is not None and state is not None
        try:
            self.g_raw.load_state_dict(state["generator"])
            if not self.init_generator_only:
                self.d_raw.load_state_dict(state["discriminators"])
            if self.init_optimizers:
                pairs = [(self.opt_g, "opt_g", self.cfg.optim.lr_g)]
                if not self.init_generator_only:
                    pairs.append((self.opt_d, "opt_d", self.cfg.optim.lr_d))
                for opt, key, lr in pairs:
                    opt.load_state_dict(state[key])
                    for group in opt.param_groups:  # never the source's decayed rate
                        group.update(
                            lr=lr,
                            initial_lr=lr,
                            betas=tuple(self.cfg.optim.betas),
                            weight_decay=self.cfg.optim.weight_decay,
                        )
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise TrainerError(
                f"cannot initialise from {info.path}: it does not load into this config's "
                f"model ({lineage.clean_text(detail, 200)})",
                ev.EXIT_NO_CHECKPOINT,
            ) from None
        self._init_state = None
        what = "generator" if self.init_generator_only else "generator and discriminators"
        opts = ", optimizer moments" if self.init_optimizers else ""
        log.info(
            "initialised the %s%s from %s (step %d, sha256 %s); fresh schedule from step 0 "
            "at lr_g %g",
            what,
            opts,
            info.path,
            info.step,
            (info.sha256 or "")[:12],
            self.cfg.optim.lr_g,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": ckpt.CHECKPOINT_FORMAT,
            "config": self._cfg_dict,
            "generator": _unwrap(self.g_raw).state_dict(),
            "discriminators": _unwrap(self.d_raw).state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.pos.step,
            "epoch": self.pos.epoch,
            "batch_in_epoch": self.pos.batch_in_epoch,
            "world_size": self.dist.world_size,
            "target_step": self.target_step,
            "rng": ckpt.capture_rng_state(),
        }

    def load_state(self, s: dict[str, Any]) -> None:
        self.g_raw.load_state_dict(s["generator"])
        self.d_raw.load_state_dict(s["discriminators"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.sched_g.load_state_dict(s["sched_g"])
        self.sched_d.load_state_dict(s["sched_d"])
        if s.get("scaler"):
            self.scaler.load_state_dict(s["scaler"])
        batch = int(s["batch_in_epoch"])
        saved_world = int(s.get("world_size", 1))
        if saved_world != self.dist.world_size:
            # Same samples consumed, re-expressed in batches of the new world size.
            batch = batch * saved_world // self.dist.world_size
        self.pos = Position(int(s["step"]), int(s["epoch"]), batch)
        if not self._target_given and "target_step" in s:
            # A resume without --target-step keeps the run's own target, not the config's.
            self.target_step = int(s["target_step"])
        ckpt.restore_rng_state(s["rng"])

    # ------------------------------------------------------------------ events
    def _emit(self, event: ev.Event) -> None:
        """Append an event; a failing log is a storage failure that stops the run."""
        if self.writer is None or self._log_failed:
            return
        try:
            self.writer.write(event)
        except ev.EventWriteError as e:
            self._log_failed = True
            self._fail(StorageError(str(e)))

    def _fail(self, err: StorageError) -> None:
        """Record the run's storage failure (the first one), say it once, and stop."""
        if self._failure is None:
            self._failure = err
            log.error("storage error: %s; stopping", err)
        self.stop.request(-1)

    def _end(self, status: str, reason: str, code: int) -> None:
        """Write run_end if the log still takes it (never raises)."""
        if self.writer is None or self.writer.closed:
            return
        try:
            self.writer.write(
                ev.RunEnd(step=self.last_step(), status=status, reason=reason, exit_code=code)
            )
        except ev.EventWriteError:
            pass  # already reported; a torn line was cut back by the writer

    def _emit_run_start(self, resumed_from: str | None, devices: list[str]) -> None:
        cfg = self.cfg
        self._emit(
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
                precision=self.precision,
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
            self._emit(
                ev.Alert(
                    kind=ev.ALERT_RESUME_FALLBACK,
                    step=self.pos.step,
                    message=f"skipped checkpoint {bad.path.name}: {reason}",
                )
            )
        for kind, msg in self._pending_alerts:
            self._emit(ev.Alert(kind=kind, step=self.pos.step, message=msg))

    # ------------------------------------------------------------------ one step
    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One D update then one G update.

        Returns [g, d, recon, adv, fm, grad_norm_g, grad_norm_d, bad] on the device (no sync).
        """
        audio = batch["audio"].to(self.device, non_blocking=True)
        with torch.no_grad():
            mel = (
                batch["mel"].to(self.device, non_blocking=True)
                if "mel" in batch
                else self.mel(audio)
            )
        with self._autocast():
            fake = self.g(mel)

        # D's state before this step's forwards and update, restored if the step is bad.
        self._rollback_d.capture()
        # Discriminators on detached fake audio (real and fake in one batched pass).
        self.d_raw.requires_grad_(True)
        with self._autocast():
            real_logits, fake_logits, _, _ = self.d(audio, fake.detach())
        loss_d = hifigan_discriminator_loss(real_logits, fake_logits).total
        # D steps before G's loss is known (G trains against the updated D, as in the
        # reference); if G's half turns out non-finite, D's update is rolled back below.
        bad_d, norm_d = self._backward(self.opt_d, self.d_raw, loss_d)
        self._apply(self.opt_d, bad_d)

        # Generator: the real half needs no graph and D needs no weight gradients.
        self.d_raw.requires_grad_(False)
        with torch.no_grad(), self._autocast():
            _, real_feats = self._score(audio)
        with self._autocast():
            fake_logits, fake_feats = self._score(fake)
        recon = self.recon(fake, audio)
        gl = hifigan_generator_loss(
            recon,
            fake_logits,
            real_feats,
            fake_feats,
            lambda_recon=self.cfg.loss.lambda_recon,
            lambda_adv=self.cfg.loss.lambda_adv,
            lambda_fm=self.cfg.loss.lambda_fm,
        )
        bad_g, norm_g = self._backward(self.opt_g, self.g_raw, gl.total)
        # A non-finite step changes neither network nor either optimizer: G is skipped
        # when either half is bad, and D (weights, Adam state, spectral-norm vectors) is
        # put back as it was before the step (its own update was already skipped if bad).
        bad = torch.maximum(bad_d, bad_g)
        self._apply(self.opt_g, bad)
        self._rollback_d.undo_where(bad)
        self.d_raw.requires_grad_(True)
        return torch.stack(
            [
                gl.total.detach().float(),
                loss_d.detach().float(),
                gl.recon.detach().float(),
                gl.adv.detach().float(),
                gl.fm.detach().float(),
                norm_g.float(),
                norm_d.float(),
                bad,
            ]
        )

    def _score(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[Any]]:
        # The G step bypasses D's DDP wrapper: D takes no gradient there, so no all-reduce.
        return self._score_fn(x)

    def _backward(
        self, opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of ``loss`` (unscaled, clipped); returns (non-finite flag, grad norm).

        Both on the device; the flag is 1.0 when the loss or a gradient is not finite.
        """
        opt.zero_grad(set_to_none=True)
        clip = self.cfg.optim.grad_clip
        params = list(module.parameters())
        if self.precision == "fp16":
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
        else:
            loss.backward()
        norm = self._grad_norm(params, clip)
        bad = (~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)).float()
        return bad, norm

    def _apply(self, opt: torch.optim.Optimizer, bad: torch.Tensor) -> None:
        """Step ``opt`` unless ``bad``: with fused AdamW the skip happens inside the kernel
        (``found_inf``), so no host sync is needed; the other paths sync anyway."""
        if self.precision == "fp16":
            if not bool(bad.item()):
                self.scaler.step(opt)
            self.scaler.update()
        elif self.fused:
            opt.found_inf = bad  # type: ignore[attr-defined]
            opt.grad_scale = None  # type: ignore[attr-defined]
            opt.step()
        elif not bool(bad.item()):
            opt.step()

    @staticmethod
    def _grad_norm(params: list[nn.Parameter], clip: float | None) -> torch.Tensor:
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, foreach=True)
        if clip:
            torch.nn.utils.clip_grads_with_norm_(params, clip, norm, foreach=True)
        return norm

    # ------------------------------------------------------------------ validation
    def validate(self) -> Verdict | None:
        """Validate the current weights on the unseen set (if any), then the validation set.

        The unseen set's ``val`` event comes first, so a reader that keeps only the latest
        record per step shows the validation set's. Returns the ledger's verdict on the
        validation set's score (None without ``checkpoint.best``).
        """
        g = _unwrap(self.g_raw)
        g.eval()
        try:
            results = []
            if self.unseen_set is not None:
                results.append(self.validator.run(g, self.unseen_set, self.pos.step, ev.UNSEEN_SET))
            results.append(self.validator.run(g, self.val_set, self.pos.step, ev.VAL_SET))
        finally:
            g.train()
        self._note_skipped_metrics()
        self._last_val_step = self.pos.step
        self._last_val = {r.set_name: _finite(r.metrics) for r in results}
        for r in results:
            self._emit_val(r)
        self._verdict = None
        if self._best is not None:
            self._verdict = self._best.judge(self.pos.step, results[-1].metrics)
            if self._verdict.alert:
                log.warning("overtraining: %s", self._verdict.alert)
                self._emit(
                    ev.Alert(
                        kind=ev.ALERT_OVERTRAINING, step=self.pos.step, message=self._verdict.alert
                    )
                )
        return self._verdict

    def _emit_val(self, r: SetResult) -> None:
        self._emit(
            ev.Val(
                step=r.step,
                losses=_json_floats(r.losses),
                samples=r.samples,
                duration=r.duration,
                metrics=_json_floats(r.metrics),
                set=r.set_name,
                utterances=r.utterances,
            )
        )
        shown = "  ".join(f"{k} {v:.4g}" for k, v in r.metrics.items())
        log.info(
            "step %d validation (%s, %d utterances, %.2f s): %s",
            r.step,
            r.set_name,
            r.utterances,
            r.duration,
            shown or f"mel L1 {r.losses[metrics_mod.MEL_L1]:.4f}",
        )

    def _note_skipped_metrics(self) -> None:
        """A metric whose package is missing: one alert per process (the log says it too)."""
        for metric, why in self.validator.skipped.items():
            if metric not in self._metric_notes:
                self._metric_notes.add(metric)
                self._emit(
                    ev.Alert(kind=ev.ALERT_METRIC_UNAVAILABLE, step=self.pos.step, message=why)
                )

    def _check_best_metric(self) -> None:
        """checkpoint.best ranking by a metric whose package is missing: refuse to start."""
        best = self.cfg.checkpoint.best
        if best is None:
            return
        needs = [best.metric]
        if best.metric == metrics_mod.COMPOSITE:
            needs = list(self.cfg.log.composite.terms())
        missing = [m for m in needs if not metrics_mod.available(m)]
        if missing:
            raise TrainerError(
                f"checkpoint.best.metric is {best.metric}, which needs "
                f"{', '.join(missing)}: {metrics_mod.missing_reason(missing[0])} (or rank by "
                f"mel_l1 or mstft; config {self.config_path})",
                ev.EXIT_USAGE,
            )

    # ------------------------------------------------------------------ checkpoint
    def _weights_finite(self) -> bool:
        flags = [torch.isfinite(p).all() for m in (self.g_raw, self.d_raw) for p in m.parameters()]
        return bool(torch.stack(flags).all().item())

    def save(self) -> None:
        started = time.perf_counter()
        step = self.pos.step
        if not self._weights_finite():
            raise TrainerError(
                f"step {step}: weights are not finite; refusing to save them", ev.EXIT_NONFINITE
            )
        me = self.cfg.checkpoint.milestone_every
        milestone = bool(me) and step % me == 0
        plan = self._plan
        validated = self._last_val_step == step
        note = None
        if self._best is not None:
            verdict = self._verdict if validated else None
            note = self._best.note(
                verdict if verdict is not None and verdict.step == step else None
            )
        info = ckpt.save_checkpoint(
            self.run_dir,
            step,
            self.pos.epoch,
            self.state_dict(),
            milestone=milestone,
            config_sha256=lineage.config_digest(self._model_cfg),
            branch=plan.branch if plan is not None else None,
            parent=plan.parent if plan is not None else None,
            model_config=self._model_cfg,
            validation=self._last_val if validated and self._last_val else None,
            best=note,
        )
        self._verify.trust(info)
        self._last_ckpt_step = step
        # The ledger after this save, from disk: its checkpoints are kept by retention.
        ledger = [i.step for i in self._best.ledger()] if self._best is not None else []
        self._emit(
            ev.Checkpoint(
                step=step,
                path=str(info.path.relative_to(self.run_dir)),
                bytes=info.bytes,
                sha256=info.sha256 or "",
                milestone=milestone,
                duration=round(time.perf_counter() - started, 4),
                best=step in ledger,
                metric=note.metric if note is not None else None,
                score=note.score if note is not None else None,
                best_steps=ledger,
            )
        )
        if step in ledger:
            log.info(
                "step %d: among the best %d by %s (best steps: %s)",
                step,
                len(ledger),
                note.metric if note is not None else "?",
                ", ".join(map(str, ledger)),
            )
        for old in ckpt.apply_retention(
            self.run_dir,
            self.cfg.checkpoint.keep_last,
            protect_steps=(step, *ledger),
            verify=self._verify,
        ):
            log.info("retention: removed %s", old.path.name)
        if self.writer is not None:
            self.writer.sync()
        log.info("step %d: checkpoint %s (%d bytes)", step, info.path.name, info.bytes)

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        """Train to the target step or until stopped; returns the process exit code."""
        cfg = self.cfg
        log_every = cfg.log.log_every
        per_step = cfg.train.batch_size * self.dist.world_size
        acc = torch.zeros(8, device=self.device)
        consec_bad = torch.zeros((), device=self.device)
        n_acc, t_acc = 0, 0.0
        status, reason, code = ev.STATUS_COMPLETED, "target step reached", ev.EXIT_OK
        if self.pos.step >= self.target_step:
            log.info("already at step %d >= target %d", self.pos.step, self.target_step)
        done = self.pos.step >= self.target_step or self._failure is not None
        while not done:
            self.sampler.set_epoch(self.pos.epoch)
            self.sampler.set_start(self.pos.batch_in_epoch)
            for batch in self.loader:
                t0 = time.perf_counter()
                out = self.train_step(batch)
                self.pos.step += 1
                self.pos.batch_in_epoch += 1
                acc += out
                consec_bad = (consec_bad + out[7]) * out[7]
                n_acc += 1
                step = self.pos.step
                logging_step = step % log_every == 0 or step == self.target_step
                if logging_step or self.device.type == "cpu":
                    # The one host sync: every logging step (and every step on CPU, where a
                    # sync costs nothing), so non-finite steps are reported promptly.
                    vals = (acc / n_acc).tolist() if logging_step else None
                    n_bad = int(consec_bad.item())
                    t_acc += time.perf_counter() - t0
                    if n_bad and (vals is not None or self.device.type == "cpu"):
                        self._emit(
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
                        self._log_step(vals, t_acc / n_acc, per_step)
                        acc.zero_()
                        n_acc, t_acc = 0, 0.0
                else:
                    t_acc += time.perf_counter() - t0
                stopping = self.agree(self.stop.set)
                if self.is_main and code == ev.EXIT_OK and self._failure is None:
                    try:
                        self._periodic(step, consec_bad)
                    except StorageError as e:
                        self._fail(e)
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
                self.sched_g.step()
                self.sched_d.step()
        self.agree.drain()
        if self._failure is not None:
            status, reason, code = ev.STATUS_FAILED, str(self._failure), ev.EXIT_STORAGE
            self._save_after_failure(self._failure)
        elif self.stop.set and code == ev.EXIT_OK:
            status = ev.STATUS_STOPPED
            reason = f"stopped by {signal_name(self.stop.signum)}"
            log.info("stopping at step %d (%s)", self.pos.step, reason)
        if self.is_main and code == ev.EXIT_OK and self._last_ckpt_step != self.pos.step:
            self._save()
        self._end(status, reason, code)
        log.info("run end at step %d: %s (%s)", self.pos.step, status, reason)
        return code

    def _save(self) -> None:
        """save(), with a failed write reported as one StorageError naming the checkpoint."""
        path = rundir.checkpoint_paths(self.run_dir, self.pos.step)[0]
        with _storage("save checkpoint", path, during_save=True):
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
            or self._last_ckpt_step == self.pos.step
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
                self._emit(
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
            self._emit(
                ev.Milestone(step=step, name=f"step {step:,}", message=f"reached step {step:,}")
            )

    def _log_step(self, vals: list[float], step_time: float, per_step: int) -> None:
        g, d, rec, adv, fm, norm_g, norm_d, _ = vals
        self._emit(
            ev.Step(
                step=self.pos.step,
                epoch=self.pos.epoch,
                g=g,
                d=d,
                stft=rec,
                adv=adv,
                fm=fm,
                recon=self.cfg.loss.recon,
                lr_g=float(f"{self.opt_g.param_groups[0]['lr']:.6g}"),
                lr_d=float(f"{self.opt_d.param_groups[0]['lr']:.6g}"),
                grad_norm_g=norm_g,
                grad_norm_d=norm_d,
                step_time=round(step_time, 6),
                samples_per_s=round(per_step / step_time, 3) if step_time > 0 else 0.0,
            )
        )

    def close(self, restore_signals: bool = True) -> None:
        # Handlers stay in place until everything is closed: a late second signal must not
        # interrupt the run_end record or the lock release. Each part is released even when
        # an earlier one fails (a full or failing disk), so no stale PID file is left.
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as e:
                if self._failure is None:
                    log.warning("%s", e)
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
    except ev.EventWriteError as e:  # the log refused run_start or an early record
        log.error("storage error: %s", e)
        t._end(ev.STATUS_FAILED, str(e), ev.EXIT_STORAGE)
        return ev.EXIT_STORAGE
    except Exception as e:
        log.exception("training failed")
        t._end(ev.STATUS_FAILED, f"{type(e).__name__}: {e}", ev.EXIT_FAILED)
        return ev.EXIT_FAILED
    finally:
        t.close(restore_signals)
