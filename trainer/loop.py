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
import signal
import sys
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
from trainer.audio import MelSpectrogram, write_wav
from trainer.config import Config
from trainer.data import Corpus, ResumableBatchSampler, TrainDataset, ValidationSet, collate
from trainer.demo_corpus import ensure_demo_corpus
from trainer.losses import ReconstructionLoss, hifigan_discriminator_loss, hifigan_generator_loss
from trainer.models import Discriminators, Generator, build_models

log = logging.getLogger("nal-train")


class TrainerError(RuntimeError):
    """A failure with a user-facing message and the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = ev.EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Position:
    """Where training stands: the next step to run is ``step + 1``."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already consumed


class StopFlag:
    """SIGTERM/SIGINT set a flag; the loop finishes its step, saves and exits."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            log.warning(
                "received %s: finishing the current step, then saving and stopping",
                signal.Signals(signum).name,
            )
        self.signum = signum

    @property
    def set(self) -> bool:
        return self.signum is not None


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
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.config_path = config_path
        self.resume = resume
        self.new_branch = new_branch
        self._target_given = target_step is not None
        self.target_step = target_step or cfg.train.max_steps
        self.stop = StopFlag()
        self.pos = Position()
        self.writer: ev.EventWriter | None = None
        self.lock: rundir.RunLock | None = None
        self._last_val_step = -1
        self._last_ckpt_step = -1
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

    # ------------------------------------------------------------------ set up
    def setup(self) -> None:
        cfg = self.cfg
        self.dist, self.device = dist_mod.init_from_env(cfg.train.device)
        self.is_main = self.dist.is_main
        if self.is_main:
            self.lock = rundir.RunLock(self.run_dir)
            try:
                self.lock.acquire()
            except rundir.RunLocked as e:
                raise TrainerError(str(e), ev.EXIT_LOCKED) from None
            self._history = rundir.run_history(self.run_dir)
            if self._history is not None and not self.resume and not self.new_branch:
                # Refused before anything is written: the existing run's log stays as it was.
                raise TrainerError(
                    rundir.fresh_start_refusal(self.run_dir, self._history), ev.EXIT_USAGE
                )
            for sub in (rundir.CHECKPOINTS_DIR, rundir.SAMPLES_DIR):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
            self.writer = ev.EventWriter(self.run_dir / rundir.EVENTS)
            self._clean_leftovers()
            if self.resume:
                # The full load test runs before the corpus and the models are built.
                self._choose_resume()

        self._seed_everything(cfg.train.seed)
        self._setup_precision()
        self._setup_data()
        self._setup_models()
        start_from = self._load_resume() if self.resume else None
        if self.is_main:
            start_from = self._start_branch() or start_from
            rundir.atomic_write_text(self.run_dir / rundir.CONFIG_FILE, config_mod.dump(cfg))
        self._setup_loader()
        self.agree = dist_mod.StopAgreement(self.dist)
        self.stop.install()
        devices = dist_mod.gather_strings(str(self.device), self.dist)
        if self.is_main:
            self._emit_run_start(start_from, devices)

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
        if d.demo and self.is_main:
            ensure_demo_corpus(Path(d.corpus_dir), a.sample_rate)
        if d.demo and self.dist.enabled:
            torch.distributed.barrier()
        self.corpus = Corpus.load(d, a)
        self.train_set = TrainDataset(self.corpus)
        self.val_set = ValidationSet(self.corpus)
        self.sampler = ResumableBatchSampler(
            len(self.train_set),
            self.cfg.train.batch_size,
            self.cfg.train.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        self.batches_per_epoch = len(self.sampler)
        self.mel = MelSpectrogram(a).to(self.device)

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
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.opt_g, gamma=o.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, gamma=o.lr_decay)
        self.recon = ReconstructionLoss(cfg.loss, mel_fn=self.mel).to(self.device)
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
        """The run's real last step: where this process got to, or what the run dir held."""
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
            if str(self.resume) == "latest":
                info, self._skipped = ckpt.find_resume_checkpoint(self.run_dir, "latest", test)
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
        if self.writer is not None:
            self.writer.write(event)

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
            )
        )
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

        # Discriminators on detached fake audio (real and fake in one batched pass).
        self.d_raw.requires_grad_(True)
        with self._autocast():
            real_logits, fake_logits, _, _ = self.d(audio, fake.detach())
        loss_d = hifigan_discriminator_loss(real_logits, fake_logits).total
        bad_d, norm_d = self._update(self.opt_d, self.d_raw, loss_d)

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
        bad_g, norm_g = self._update(self.opt_g, self.g_raw, gl.total)
        self.d_raw.requires_grad_(True)
        bad = torch.maximum(bad_d, bad_g)
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

    def _update(
        self, opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor
    ) -> torch.Tensor:
        """Backward + step; a non-finite loss or gradient leaves the parameters unchanged.

        Returns (skipped, grad norm) on the device; skipped is 1.0 when the update was dropped. With fused AdamW the skip
        happens inside the optimizer kernel (``found_inf``), so no host sync is needed.
        """
        opt.zero_grad(set_to_none=True)
        clip = self.cfg.optim.grad_clip
        params = list(module.parameters())
        if self.precision == "fp16":
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
            norm = self._grad_norm(params, clip)
            bad = (~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)).float()
            self.scaler.step(opt)
            self.scaler.update()
            return bad, norm
        loss.backward()
        norm = self._grad_norm(params, clip)
        bad = (~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)).float()
        if self.fused:
            opt.found_inf = bad  # type: ignore[attr-defined]
            opt.grad_scale = None  # type: ignore[attr-defined]
            opt.step()
        elif not bool(bad.item()):
            opt.step()
        return bad, norm

    @staticmethod
    def _grad_norm(params: list[nn.Parameter], clip: float | None) -> torch.Tensor:
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, foreach=True)
        if clip:
            torch.nn.utils.clip_grads_with_norm_(params, clip, norm, foreach=True)
        return norm

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> None:
        started = time.perf_counter()
        g = _unwrap(self.g_raw)
        g.eval()
        errs, recons, written = [], [], []
        out_dir = self.run_dir / rundir.SAMPLES_DIR / f"step_{self.pos.step:08d}"
        sr = self.cfg.audio.sample_rate
        for i, item in enumerate(self.val_set):
            audio = item.audio_tensor().to(self.device)
            true_mel = self.mel(audio)  # the L1 target; also G's input unless mels are given
            mel = true_mel if item.mel is None else torch.from_numpy(item.mel)[None].to(self.device)
            with self._autocast():
                fake = g(mel).float()
            # Validation audio is trimmed to a multiple of the hop, so lengths already match.
            errs.append(torch.nn.functional.l1_loss(self.mel(fake), true_mel).item())
            recons.append(self.recon(fake, audio).item())
            if i < self.cfg.log.val_samples:
                out_dir.mkdir(parents=True, exist_ok=True)
                for tag, wav in (("gen", fake), ("gt", audio)):
                    p = out_dir / f"{item.id}_{tag}.wav"
                    write_wav(p, wav.view(-1).cpu().numpy(), sr)
                    written.append(str(p.relative_to(self.run_dir)))
        g.train()
        losses = {
            "mel_l1": float(np.mean(errs)) if errs else math.nan,
            self.cfg.loss.recon: float(np.mean(recons)) if recons else math.nan,
        }
        self._last_val_step = self.pos.step
        self._emit(
            ev.Val(
                step=self.pos.step,
                losses=losses,
                samples=written,
                duration=round(time.perf_counter() - started, 4),
            )
        )
        log.info("step %d validation: mel L1 %.4f", self.pos.step, losses["mel_l1"])

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
        )
        self._verify.trust(info)
        self._last_ckpt_step = step
        self._emit(
            ev.Checkpoint(
                step=step,
                path=str(info.path.relative_to(self.run_dir)),
                bytes=info.bytes,
                sha256=info.sha256 or "",
                milestone=milestone,
                duration=round(time.perf_counter() - started, 4),
            )
        )
        for old in ckpt.apply_retention(
            self.run_dir, self.cfg.checkpoint.keep_last, protect_steps=(step,), verify=self._verify
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
        done = self.pos.step >= self.target_step
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
                        self.stop.signum = -1
                    if vals is not None:
                        self._log_step(vals, t_acc / n_acc, per_step)
                        acc.zero_()
                        n_acc, t_acc = 0, 0.0
                else:
                    t_acc += time.perf_counter() - t0
                stopping = self.agree(self.stop.set)
                if self.is_main and code == ev.EXIT_OK:
                    self._periodic(step, consec_bad)
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
        if self.stop.set and code == ev.EXIT_OK:
            status = ev.STATUS_STOPPED
            reason = (
                f"stopped by {signal.Signals(self.stop.signum).name}"
                if self.stop.signum and self.stop.signum > 0
                else "stopped by another rank"
            )
        if self.is_main and code == ev.EXIT_OK and self._last_ckpt_step != self.pos.step:
            self.save()
        self._emit(ev.RunEnd(step=self.pos.step, status=status, reason=reason, exit_code=code))
        log.info("run end at step %d: %s (%s)", self.pos.step, status, reason)
        return code

    def _periodic(self, step: int, consec_bad: torch.Tensor) -> None:
        cfg = self.cfg
        if step % cfg.log.val_every == 0:
            self.validate()
        if step % cfg.checkpoint.every == 0:
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
                self.save()
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
        # interrupt the run_end record or the lock release.
        if self.writer is not None:
            self.writer.close()
        if self.lock is not None:
            self.lock.release()
        dist_mod.shutdown()
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
) -> int:
    """Run a training job end to end; returns the exit code (see trainer.events.EXIT_*).

    The CLI passes ``restore_signals=False``: a process that is exiting keeps ignoring
    further SIGTERM/SIGINT instead of dying mid-teardown.
    """
    t = Trainer(
        cfg, run_dir, config_path, resume=resume, target_step=target_step, new_branch=new_branch
    )
    try:
        t.setup()
        return t.run()
    except TrainerError as e:
        log.error("%s", e)
        if t.writer is not None:
            t._emit(
                ev.RunEnd(
                    step=t.last_step(),
                    status=ev.STATUS_FAILED,
                    reason=str(e),
                    exit_code=e.exit_code,
                )
            )
        return e.exit_code
    except Exception as e:
        log.exception("training failed")
        if t.writer is not None:
            t._emit(
                ev.RunEnd(
                    step=t.last_step(),
                    status=ev.STATUS_FAILED,
                    reason=f"{type(e).__name__}: {e}",
                    exit_code=ev.EXIT_FAILED,
                )
            )
        return ev.EXIT_FAILED
    finally:
        t.close(restore_signals)
        sys.stdout.flush()
