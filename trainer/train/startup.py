"""Start-up: the phase boundaries where a stop request is honoured, the checks made before
anything is built, and the parts of a run built in order (precision, data, networks and
their optimizers, the loader).

Nothing here holds a reference to the Trainer: the parts are plain bundles the Trainer
keeps (a Trainer <-> part cycle would leave it, and its DDP reducer's threads, to be
collected at interpreter exit, where a torchrun rank then aborts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from trainer.audio import AudioError, MelSpectrogram
from trainer.checkpointing import store as ckpt
from trainer.config.schema import Config
from trainer.config.threads import resolve_threads
from trainer.corpus.report import RULE_SHORT_CLIPS, RULE_UNREADABLE, DataError
from trainer.data import Corpus, ResumableBatchSampler, TrainDataset, ValidationSet, collate
from trainer.demo_corpus import ensure_demo_corpus
from trainer.events import schema as ev
from trainer.events.writer import add_observer, remove_observer
from trainer.models import build_models
from trainer.models.discriminators import Discriminators
from trainer.models.generator import Generator
from trainer.rundir.layout import CheckpointError
from trainer.tools import tbmirror
from trainer.train import distributed as dist_mod
from trainer.train import metrics as metrics_mod
from trainer.train.errors import TrainerError
from trainer.train.signals import StopFlag, StopRequested

log = logging.getLogger("nal-train")

# Tests only: wait at this start-up phase (its "start-up: <phase>" log line is written
# first) until a stop request arrives, so a test can signal at a chosen phase.
HOLD_ENV = "NAL_TRAIN_TEST_HOLD"

Alert = tuple[str, str]  # (alert kind, message): raised once the event log has run_start


class Phases:
    """Start-up phase boundaries: each says so, and leaves if a stop was asked for."""

    def __init__(self, stop: StopFlag, dist: dist_mod.DistInfo) -> None:
        self.stop = stop
        self.dist = dist

    def enter(self, name: str) -> None:
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

    def tick(self) -> None:
        # Inside a long phase (corpus checks, preloading): only a lone process may leave
        # mid-phase; ranks wait for the next phase boundary to agree.
        if not self.dist.enabled:
            self.stop.check()


# ------------------------------------------------------------------ checks and cleanup


def report_leftovers(run_dir: Path) -> list[Alert]:
    """Tidy what killed writes left in ``run_dir`` (see checkpoint.clean_leftovers), log it,
    and return the alerts for checkpoints kept aside."""
    try:
        left = ckpt.clean_leftovers(run_dir)
    except CheckpointError as e:  # a garbled move journal: a person must look
        raise TrainerError(str(e), ev.EXIT_FAILED) from None
    for src, dst in left.moved:
        log.info("finished an interrupted move: %s -> %s", src, dst)
    for p in left.recovered:
        log.info("finished the interrupted save of %s (both files were complete)", p.name)
    for p in left.removed:
        log.info("removed a temp file of an unfinished write: %s", p)
    alerts = []
    for p, what in left.kept_aside:
        msg = (
            f"{p.name} had no manifest; kept aside in {left.kept_aside_dir}/, not deleted ({what})"
        )
        log.warning("%s", msg)
        alerts.append((ev.ALERT_CHECKPOINT_KEPT_ASIDE, msg))
    return alerts


def check_best_metric(cfg: Config, config_path: str) -> None:
    """checkpoint.best ranking by a metric whose package is missing: refuse to start."""
    best = cfg.checkpoint.best
    if best is None:
        return
    needs = [best.metric]
    if best.metric == metrics_mod.COMPOSITE:
        needs = list(cfg.log.composite.terms())
    missing = [m for m in needs if not metrics_mod.available(m)]
    if missing:
        raise TrainerError(
            f"checkpoint.best.metric is {best.metric}, which needs "
            f"{', '.join(missing)}: {metrics_mod.missing_reason(missing[0])} (or rank by "
            f"mel_l1 or mstft; config {config_path})",
            ev.EXIT_USAGE,
        )


def check_tensorboard(cfg: Config, config_path: str) -> None:
    """log.tensorboard without the [tensorboard] extra: refused before anything trains."""
    if cfg.log.tensorboard:
        why = tbmirror.missing()
        if why:
            raise TrainerError(f"{why} (config {config_path})", ev.EXIT_USAGE)


def open_mirror(run_dir: Path, events: Any, step: int) -> tbmirror.TensorBoardMirror | None:
    """The TensorBoard mirror, observing the event writer; a failure to open it is an alert
    (and no mirror), never a reason not to train."""

    def failed(message: str, at: int = step) -> None:
        events.emit(ev.Alert(kind=ev.ALERT_MIRROR, step=at, message=message))

    try:
        mirror = tbmirror.TensorBoardMirror(run_dir / tbmirror.TENSORBOARD_DIR, run_dir, failed)
    except Exception as e:  # noqa: BLE001 - a mirror must never stop the run
        msg = (
            f"TensorBoard mirror into {run_dir / tbmirror.TENSORBOARD_DIR} cannot start "
            f"({type(e).__name__}: {e}); training goes on without it"
        )
        log.warning(msg)
        failed(msg)
        return None
    add_observer(mirror.record)
    return mirror


def close_mirror(mirror: tbmirror.TensorBoardMirror | None) -> None:
    if mirror is not None:
        remove_observer(mirror.record)
        mirror.close()


def set_threads(setting: int) -> int:
    """Intra-op CPU threads for this process (``train.threads``; 0: one per physical core,
    shared among this machine's ranks); returns the number set."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    n = resolve_threads(setting, local)
    torch.set_num_threads(n)
    how = "train.threads" if setting else "one per physical core"
    log.info("CPU threads: %d per process (%s)", n, how)
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------ precision


@dataclass
class Precision:
    """The precision in use (after falling back where the device lacks the asked one)."""

    name: str  # fp32, bf16 or fp16
    amp_dtype: torch.dtype | None  # None: no autocast
    scaler: torch.amp.GradScaler  # enabled for fp16 only
    device_type: str

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.amp_dtype)


def resolve_precision(cfg: Config, device: torch.device) -> Precision:
    t = cfg.train
    cuda = device.type == "cuda"
    precision = t.precision
    if t.precision == "fp16" and not cuda:
        log.warning("train.precision fp16 needs CUDA; using fp32 on %s", device)
        precision = "fp32"
    if t.precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16 support; using fp16 with a GradScaler")
        precision = "fp16"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = t.tf32
        torch.backends.cudnn.allow_tf32 = t.tf32
        torch.backends.cudnn.benchmark = True
    return Precision(precision, amp_dtype, scaler, device.type)


# ----------------------------------------------------------------------------- data


@dataclass
class Data:
    """The checked corpus, its datasets and the resumable sampler."""

    corpus: Corpus
    train_set: TrainDataset
    val_set: ValidationSet
    unseen_set: ValidationSet | None
    sampler: ResumableBatchSampler
    mel: MelSpectrogram
    alerts: list[Alert]  # the corpus warnings (rank 0 only)


def build_data(
    cfg: Config,
    config_path: str,
    dist: dist_mod.DistInfo,
    device: torch.device,
    tick: Callable[[], None],
) -> Data:
    """Check the corpus (a refused one is a usage error naming the rule) and load it."""
    d, a = cfg.data, cfg.audio
    try:
        if d.demo and dist.is_main:
            ensure_demo_corpus(Path(d.corpus_dir), a.sample_rate)
        if d.demo and dist.enabled:
            torch.distributed.barrier()
        corpus = Corpus.load(cfg, dist.world_size, tick)
        alerts = _corpus_warnings(corpus) if dist.is_main else []
        train_set = TrainDataset(corpus, tick=tick)
        val_set = ValidationSet(corpus, tick=tick)
        unseen_set = ValidationSet(corpus, tick=tick, unseen=True) if corpus.unseen else None
        sampler = ResumableBatchSampler(
            len(train_set),
            cfg.train.batch_size,
            cfg.train.seed,
            rank=dist.rank,
            world_size=dist.world_size,
        )
    except DataError as e:
        msg = str(e) if str(e).startswith("[") else f"[corpus] {e}"
        raise TrainerError(f"data error {msg} (config {config_path})", ev.EXIT_USAGE) from None
    except AudioError as e:  # a file that passed the header rules but cannot be decoded
        raise TrainerError(f"data error [{RULE_UNREADABLE}] {e}", ev.EXIT_USAGE) from None
    mel = MelSpectrogram(a).to(device)
    return Data(corpus, train_set, val_set, unseen_set, sampler, mel, alerts)


def _corpus_warnings(corpus: Corpus) -> list[Alert]:
    report = corpus.report
    if report is None:
        return []
    alerts = []
    for f in report.warnings:
        log.warning("corpus: [%s] %s", f.rule, f.message)
        kind = ev.ALERT_SHORT_CLIPS if f.rule == RULE_SHORT_CLIPS else ev.ALERT_CORPUS
        alerts.append((kind, f.message))
    return alerts


def build_loader(
    cfg: Config, train_set: TrainDataset, sampler: ResumableBatchSampler, device: torch.device
) -> DataLoader:
    workers = cfg.data.num_workers
    return DataLoader(
        train_set,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


# ------------------------------------------------------------------------- networks


@dataclass
class Nets:
    """The networks, their optimizers and schedules, and what the train step calls."""

    g_raw: Generator
    d_raw: Discriminators
    opt_g: torch.optim.AdamW
    opt_d: torch.optim.AdamW
    sched_g: torch.optim.lr_scheduler.ExponentialLR
    sched_d: torch.optim.lr_scheduler.ExponentialLR
    fused: bool  # fused AdamW: a non-finite step is skipped on the device (found_inf)
    g: nn.Module  # g_raw, compiled and/or DDP-wrapped
    d: nn.Module
    score_fn: Callable[[torch.Tensor], Any]  # D's scoring for the G step (no DDP wrapper)


def build_nets(
    cfg: Config, device: torch.device, precision: Precision, dist: dist_mod.DistInfo
) -> tuple[Nets, Alert | None]:
    """The models on ``device`` with AdamW and exponential decay, compiled if asked (falling
    back to eager with an alert) and DDP-wrapped under torchrun."""
    g, d = build_models(cfg)
    g_raw: Generator = g.to(device)
    d_raw: Discriminators = d.to(device)
    # Fused AdamW skips a step on device when ``found_inf`` is set: no host sync needed to
    # drop a non-finite update. With fp16 the GradScaler owns that flag instead.
    fused = device.type in ("cpu", "cuda") and precision.name != "fp16"
    o = cfg.optim
    opt_g = torch.optim.AdamW(
        g_raw.parameters(), o.lr_g, betas=tuple(o.betas), weight_decay=o.weight_decay, fused=fused
    )
    opt_d = torch.optim.AdamW(
        d_raw.parameters(), o.lr_d, betas=tuple(o.betas), weight_decay=o.weight_decay, fused=fused
    )
    nets = Nets(
        g_raw,
        d_raw,
        opt_g,
        opt_d,
        torch.optim.lr_scheduler.ExponentialLR(opt_g, gamma=o.lr_decay),
        torch.optim.lr_scheduler.ExponentialLR(opt_d, gamma=o.lr_decay),
        fused,
        g=g_raw,
        d=d_raw,
        score_fn=d_raw.score,
    )
    alert = _try_compile(cfg, device, nets) if cfg.train.compile else None
    if dist.enabled:
        ids = [device.index] if device.type == "cuda" else None
        nets.g = DDP(nets.g, device_ids=ids)
        # Every MPD/MSD output feeds the loss, so no unused-parameter search is needed.
        nets.d = DDP(nets.d, device_ids=ids)
    return nets, alert


def _try_compile(cfg: Config, device: torch.device, nets: Nets) -> Alert | None:
    try:
        g = torch.compile(nets.g_raw)
        d = torch.compile(nets.d_raw)
        seg = cfg.audio.segment_size
        with torch.no_grad():
            mel = torch.zeros(1, cfg.audio.n_mels, seg // cfg.audio.hop_length, device=device)
            wav = g(mel)
            d(wav, wav)
        nets.g, nets.d = g, d
        nets.score_fn = torch.compile(nets.d_raw.score)
    except Exception as e:  # noqa: BLE001 - any backend failure falls back to eager
        msg = f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); using eager mode"
        log.warning(msg)
        return (ev.ALERT_COMPILE_FALLBACK, msg)
    return None
