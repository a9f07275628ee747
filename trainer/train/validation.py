"""One validation pass: the generator on fixed utterances, every quality metric, the samples.

Used by the trainer at every ``log.val_every`` steps (on the validation set and, when
``data.unseen_metadata`` names one, the unseen set) and by ``bench/bench_vocode.py
--validation``, so the cost the benchmark reports is the cost of this code.

Samples: the generated audio of the first ``log.val_samples`` utterances goes to
``samples/step_XXXXXXXX/<id>_gen.wav`` (``.../unseen/`` for the unseen set); their ground
truth is written once per run to ``samples/gt/<id>.wav`` (``samples/gt/unseen/``) and reused.
Beside each WAV goes its mel picture (``<id>_gen.logmel``, ``gt/<id>.logmel``; the format is
:mod:`trainer.rundir.melpic`), made from the log-mel the mel L1 already computed.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from trainer.audio import write_wav
from trainer.config.schema import Config
from trainer.data import ValItem
from trainer.events import schema as ev
from trainer.rundir.layout import GEN_SUFFIX, atomic_write_bytes, gt_dir, sample_dir
from trainer.rundir.melpic import picture_path
from trainer.train import metrics as M
from trainer.train.pictures import mel_picture

Storage = Callable[[str, Path], contextlib.AbstractContextManager[Any]]


def _no_storage(op: str, path: Path) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


@dataclass
class SetResult:
    """One validation of one set: what the ``val`` event carries, plus where time went."""

    set_name: str
    step: int
    metrics: dict[str, float]  # every computed metric (and composite when it is complete)
    losses: dict[str, float]  # mel_l1 and the reconstruction loss by name (compatibility)
    samples: list[str]  # run-dir-relative WAV paths: generated, then ground truth
    duration: float
    utterances: int
    seconds: dict[str, float] = field(default_factory=dict)  # generator, recon, per metric
    pictures: list[str] = field(default_factory=list)  # the samples' mel pictures, same order


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


class Validator:
    """Runs validations for one run; the metric set and composite weights come from ``cfg``."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        mel_fn: Callable[[torch.Tensor], torch.Tensor],
        recon_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        device: torch.device,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
        storage: Storage = _no_storage,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.mel_fn = mel_fn
        self.recon_fn = recon_fn
        self.device = device
        self.autocast = autocast
        self.storage = storage
        self.weights = M.CompositeWeights(**asdict(cfg.log.composite))
        self.metrics = tuple(cfg.log.val_metrics)
        self._gt_ok: set[Path] = set()  # ground-truth files known to be in place
        self._gt_pic_ok: set[Path] = set()  # ground-truth mel pictures known to be in place
        # Metrics dropped because their package is missing: {metric: note}. Filled by the
        # first validation; the trainer reports each once.
        self.skipped: dict[str, str] = {}

    @torch.no_grad()
    def run(
        self,
        generator: torch.nn.Module,
        items: Iterable[ValItem],
        step: int,
        set_name: str = ev.VAL_SET,
        write_samples: bool = True,
    ) -> SetResult:
        started = time.perf_counter()
        sr = self.cfg.audio.sample_rate
        scorer = M.QualityScorer(sr, self.mel_fn, self.metrics, self.weights)
        self.skipped.update(scorer.skipped)
        mel_errs: list[float] = []
        recons: list[float] = []
        gen_paths: list[str] = []
        gt_paths: list[str] = []
        pics: tuple[list[str], list[str]] = ([], [])  # generated, ground truth
        t_gen = t_recon = t_pic = 0.0
        n = 0
        for i, item in enumerate(items):
            n += 1
            t0 = time.perf_counter()
            audio = item.audio_tensor().to(self.device)
            true_mel = self.mel_fn(audio)  # the L1 target; also G's input unless mels are given
            mel = true_mel if item.mel is None else torch.from_numpy(item.mel)[None].to(self.device)
            with self.autocast():
                fake = generator(mel).float()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            t1 = time.perf_counter()
            # Validation audio is trimmed to a multiple of the hop, so lengths already match.
            fake_mel = self.mel_fn(fake)
            err = torch.nn.functional.l1_loss(fake_mel, true_mel).item()
            mel_errs.append(err)
            recons.append(self.recon_fn(fake, audio).item())
            t_gen += t1 - t0
            t_recon += time.perf_counter() - t1
            scorer.score(fake, audio, known={M.MEL_L1: err})
            if write_samples and i < self.cfg.log.val_samples:
                gen_paths.append(self._write_gen(fake, item, step, set_name))
                gt_paths.append(self._write_gt(item, set_name))
                t2 = time.perf_counter()
                pics[0].append(self._write_picture(gen_paths[-1], fake_mel, fake.numel()))
                pics[1].append(self._write_gt_picture(gt_paths[-1], true_mel, audio.numel()))
                t_pic += time.perf_counter() - t2
        metrics = scorer.result()
        losses = {M.MEL_L1: _mean(mel_errs), self.cfg.loss.recon: _mean(recons)}
        seconds = {"generator": t_gen, "recon": t_recon, **scorer.seconds, "pictures": t_pic}
        return SetResult(
            set_name=set_name,
            step=step,
            metrics=metrics,
            losses=losses,
            samples=gen_paths + gt_paths,
            duration=round(time.perf_counter() - started, 4),
            utterances=n,
            seconds=seconds,
            pictures=pics[0] + pics[1],
        )

    def _rel(self, p: Path) -> str:
        return str(p.relative_to(self.run_dir))

    def _write_gen(self, fake: torch.Tensor, item: ValItem, step: int, set_name: str) -> str:
        d = sample_dir(self.run_dir, step, set_name)
        with self.storage("create", d):
            d.mkdir(parents=True, exist_ok=True)
        p = d / f"{item.id}{GEN_SUFFIX}.wav"
        with self.storage("write sample", p):
            write_wav(p, fake.view(-1).cpu().numpy(), self.cfg.audio.sample_rate)
        return self._rel(p)

    def _write_gt(self, item: ValItem, set_name: str) -> str:
        """The ground truth, written only when it is not already there (once per run)."""
        p = gt_dir(self.run_dir, set_name) / f"{item.id}.wav"
        if p not in self._gt_ok:
            if not _same_length(p, len(item.audio)):
                with self.storage("create", p.parent):
                    p.parent.mkdir(parents=True, exist_ok=True)
                with self.storage("write sample", p):
                    write_wav(p, item.audio, self.cfg.audio.sample_rate)
            self._gt_ok.add(p)
        return self._rel(p)

    def _write_picture(self, wav_rel: str, log_mel: torch.Tensor, samples: int) -> str:
        """The mel picture beside ``wav_rel`` (run-dir relative); returns its relative path."""
        p = picture_path(self.run_dir / wav_rel)
        data = mel_picture(log_mel[0].cpu().numpy(), self.cfg.audio, samples)
        with self.storage("write sample", p):
            atomic_write_bytes(p, data)
        return self._rel(p)

    def _write_gt_picture(self, wav_rel: str, log_mel: torch.Tensor, samples: int) -> str:
        """The ground truth's picture: written once per run, like its WAV."""
        p = picture_path(self.run_dir / wav_rel)
        if p not in self._gt_pic_ok:
            self._write_picture(wav_rel, log_mel, samples)
            self._gt_pic_ok.add(p)
        return self._rel(p)


def _same_length(path: Path, frames: int) -> bool:
    """True when ``path`` is a readable WAV of ``frames`` samples (a ground truth in place)."""
    try:
        return sf.info(str(path)).frames == frames
    except (sf.SoundFileError, RuntimeError, OSError):
        return False
