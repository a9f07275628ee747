"""Audio-quality metrics for validation: mel L1, multi-resolution STFT distance, PESQ, STOI.

Each metric is a plain function of a generated and a reference waveform. PESQ (wideband,
16 kHz) and STOI come from the public ``pesq`` and ``pystoi`` packages (extra
``naudiolab[quality]``); when one is absent it is skipped, with a note logged once per
process, and never replaced by a made-up value. ``composite`` folds the metrics into one
lower-is-better score, in the spirit of Vocos's validation loss (mel L1 + (5 - PESQ) + ...).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import soxr
import torch

from trainer.events import schema as ev
from trainer.losses import pwg_stft_loss

log = logging.getLogger("nal-train")

# Names as they appear in the ``val`` event's ``metrics`` (docs/events.md).
MEL_L1 = ev.METRIC_MEL_L1
MSTFT = ev.METRIC_MSTFT
PESQ = ev.METRIC_PESQ
STOI = ev.METRIC_STOI
COMPOSITE = ev.METRIC_COMPOSITE
ALL_METRICS = (MEL_L1, MSTFT, PESQ, STOI)
# Which way is better, for the best-checkpoint ledger and the over-training alert.
HIGHER_IS_BETTER = ev.METRIC_HIGHER_IS_BETTER

PESQ_RATE = 16000  # wideband PESQ (ITU-T P.862.2) is defined at 16 kHz
PESQ_WB_MAX = 4.644  # the score of a signal against itself (P.862.2 MOS-LQO mapping's top)
# auraloss's MultiResolutionSTFTLoss defaults (n_fft, hop, win), the "M-STFT" that BigVGAN
# reports: spectral convergence + log-magnitude L1, averaged over resolutions.
MSTFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = (
    (1024, 120, 600),
    (2048, 240, 1200),
    (512, 50, 240),
)

_OPTIONAL = {PESQ: "pesq", STOI: "pystoi"}
_noted: set[str] = set()


def note_once(key: str, message: str) -> bool:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    if key in _noted:
        return False
    _noted.add(key)
    log.warning("%s", message)
    return True


def available(metric: str) -> bool:
    """True when the package behind ``metric`` is importable (mel L1 and M-STFT always are)."""
    pkg = _OPTIONAL.get(metric)
    return pkg is None or importlib.util.find_spec(pkg) is not None


def missing_reason(metric: str) -> str:
    pkg = _OPTIONAL[metric]
    return (
        f"metric {metric!r} skipped: the {pkg!r} package is not installed "
        f"(pip install 'naudiolab[quality]')"
    )


# ---------------------------------------------------------------------------- helpers


def _mono(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    a = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = np.asarray(a, dtype=np.float64).squeeze()
    if a.ndim != 1:
        raise ValueError(f"{name}: expected mono audio, got shape {np.shape(x)}")
    return a


def _pair_np(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray):
    p, t = _mono(pred, "pred"), _mono(target, "target")
    n = min(len(p), len(t))
    return p[:n], t[:n]


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, dtype=np.float32))
    t = t.float()
    if t.dim() == 1:
        t = t[None]
    elif t.dim() == 3:
        t = t.squeeze(1)
    return t


def _trim_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = _as_tensor(pred)
    t = _as_tensor(target).to(p.device)
    n = min(p.shape[-1], t.shape[-1])
    return p[..., :n], t[..., :n]


# ---------------------------------------------------------------------------- metrics


@torch.no_grad()
def mel_l1(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    mel_fn: Callable[[torch.Tensor], torch.Tensor],
) -> float:
    """Mean absolute difference of the log-mel spectrograms (``mel_fn``: the run's mel)."""
    p, t = _trim_pair(pred, target)
    return float(torch.nn.functional.l1_loss(mel_fn(p), mel_fn(t)).item())


@torch.no_grad()
def mstft_distance(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    resolutions: Sequence[Sequence[int]] = MSTFT_RESOLUTIONS,
) -> float:
    """Multi-resolution STFT distance: spectral convergence + log-magnitude L1 (auraloss's)."""
    p, t = _trim_pair(pred, target)
    return float(pwg_stft_loss(p, t, resolutions).item())


def _to_16k(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == PESQ_RATE:
        return x
    return soxr.resample(x, sr, PESQ_RATE, quality="HQ")


def pesq_wb(
    pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, sr: int
) -> float | None:
    """Wideband PESQ (P.862.2) at 16 kHz, -0.5..4.64, higher is better.

    None when the ``pesq`` package is missing, or when PESQ cannot score the pair (a silent
    or too-short reference).
    """
    if not available(PESQ):
        note_once(PESQ, missing_reason(PESQ))
        return None
    from pesq import BufferTooShortError, NoUtterancesError, pesq  # the [quality] extra

    p, t = _pair_np(pred, target)
    if not np.any(t):  # pesq normalises by the peak: a silent reference divides by zero
        return None
    try:
        return float(pesq(PESQ_RATE, _to_16k(t, sr), _to_16k(p, sr), "wb"))
    except (NoUtterancesError, BufferTooShortError):
        return None


def stoi(
    pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, sr: int
) -> float | None:
    """Short-time objective intelligibility, 0..1, higher is better (pystoi, classic STOI).

    None when ``pystoi`` is missing or the clip is too short for STOI's 384 ms frames.
    """
    if not available(STOI):
        note_once(STOI, missing_reason(STOI))
        return None
    from pystoi import stoi as _stoi  # the [quality] extra

    p, t = _pair_np(pred, target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(t, p, sr, extended=False))
    # pystoi warns and returns 1e-5 when there are fewer than 30 frames: not a score.
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    return value


# ---------------------------------------------------------------------------- composite


@dataclass(frozen=True)
class CompositeWeights:
    """Weights of the lower-is-better composite (Vocos-like: mel + M-STFT + PESQ gap)."""

    mel_l1: float = 1.0
    mstft: float = 1.0
    pesq: float = 1.0
    stoi: float = 0.0

    def terms(self) -> dict[str, float]:
        return {
            k: w
            for k, w in (
                (MEL_L1, self.mel_l1),
                (MSTFT, self.mstft),
                (PESQ, self.pesq),
                (STOI, self.stoi),
            )
            if w
        }


def composite(metrics: Mapping[str, float | None], weights: CompositeWeights) -> float | None:
    """``w_mel*mel_l1 + w_mstft*mstft + w_pesq*(4.644 - pesq) + w_stoi*(1 - stoi)``.

    Lower is better; 0 for a perfect copy. None when a weighted metric is missing (a score
    built from fewer terms would not compare with one built from all of them).
    """
    total = 0.0
    for name, w in weights.terms().items():
        v = metrics.get(name)
        if v is None or not math.isfinite(v):
            return None
        gap = {PESQ: PESQ_WB_MAX - v, STOI: 1.0 - v}.get(name, v)
        total += w * gap
    return total


# ---------------------------------------------------------------------------- aggregation


@dataclass
class QualityScorer:
    """Scores utterance pairs one by one and averages each metric over the set.

    ``metrics`` picks which to compute; an optional one whose package is missing is
    dropped with a note logged once (see ``skipped``).
    """

    sample_rate: int
    mel_fn: Callable[[torch.Tensor], torch.Tensor]
    metrics: Iterable[str] = ALL_METRICS
    weights: CompositeWeights = field(default_factory=CompositeWeights)
    mstft_resolutions: Sequence[Sequence[int]] = MSTFT_RESOLUTIONS

    def __post_init__(self) -> None:
        wanted = list(dict.fromkeys(self.metrics))
        unknown = [m for m in wanted if m not in ALL_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(ALL_METRICS)}")
        self.skipped: dict[str, str] = {}
        self.active: list[str] = []
        for m in wanted:
            if available(m):
                self.active.append(m)
            else:
                self.skipped[m] = missing_reason(m)
                note_once(m, self.skipped[m])
        self._values: dict[str, list[float]] = {m: [] for m in self.active}
        self.unscored: dict[str, int] = {m: 0 for m in self.active}
        self.seconds: dict[str, float] = {m: 0.0 for m in self.active}  # time spent per metric

    def score(
        self,
        pred: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        known: Mapping[str, float] | None = None,
    ) -> dict[str, float | None]:
        """Every active metric for one utterance (None where the metric cannot score it).

        ``known`` holds values the caller already computed (e.g. validation's mel L1).
        """
        out: dict[str, float | None] = {}
        for m in self.active:
            t0 = time.perf_counter()
            if known is not None and m in known:
                v: float | None = known[m]
            elif m == MEL_L1:
                v = mel_l1(pred, target, self.mel_fn)
            elif m == MSTFT:
                v = mstft_distance(pred, target, self.mstft_resolutions)
            elif m == PESQ:
                v = pesq_wb(pred, target, self.sample_rate)
            else:
                v = stoi(pred, target, self.sample_rate)
            self.seconds[m] += time.perf_counter() - t0
            out[m] = v
            if v is None:
                self.unscored[m] += 1
            else:
                self._values[m].append(v)
        return out

    def result(self) -> dict[str, float]:
        """Means over the scored utterances, plus ``composite`` when every weighted term is in."""
        means: dict[str, float] = {m: float(np.mean(vs)) for m, vs in self._values.items() if vs}
        c = composite(means, self.weights)
        if c is not None:
            means[COMPOSITE] = c
        return means
