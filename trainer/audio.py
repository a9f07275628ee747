"""WAV reading/writing and the HiFi-GAN log-mel spectrogram.

``read_wav`` returns float32 mono in [-1, 1], resampling with soxr when asked; ``write_wav``
writes 16-bit PCM atomically. ``MelSpectrogram`` reproduces the reference HiFi-GAN mel
(reflect pad, no centring, Hann window, slaney mel filters, log of clamped magnitude).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import nn

from trainer.config.schema import AudioConfig
from trainer.rundir.layout import open_exclusive, temp_path_for

LOG_FLOOR = 1e-5  # clamp before log: the log-mel of silence is log(1e-5) ~ -11.51
MAG_EPS = 1e-9  # inside the sqrt so the gradient of |X| is finite at X = 0


class AudioError(ValueError):
    """A WAV file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class WavInfo:
    """Header facts of a sound file, read without decoding the samples."""

    sample_rate: int
    channels: int
    frames: int


def wav_info(path: str | os.PathLike[str]) -> WavInfo:
    """Sample rate, channel count and length of ``path`` (header only)."""
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: cannot read audio file: {_reason(e)}") from None
    return WavInfo(int(info.samplerate), int(info.channels), int(info.frames))


def read_wav(path: str | os.PathLike[str], expected_sr: int, resample: bool = True) -> np.ndarray:
    """Read a mono sound file as float32 in [-1, 1] at ``expected_sr``.

    Other rates are resampled with soxr (or refused when ``resample`` is false).
    """
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: cannot read audio file: {_reason(e)}") from None
    if wav.shape[1] != 1:
        raise AudioError(
            f"{path}: has {wav.shape[1]} channels; only mono audio is supported (downmix it first)"
        )
    wav = wav[:, 0]
    if sr != expected_sr:
        if not resample:
            raise AudioError(
                f"{path}: sample rate is {sr} Hz but the config expects "
                f"{expected_sr} Hz (resampling is disabled: data.resample=false)"
            )
        wav = soxr.resample(wav, sr, expected_sr, quality="HQ").astype(np.float32, copy=False)
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    # Float WAVs and resampler overshoot can leave [-1, 1]; the model's tanh output cannot.
    return np.clip(wav, -1.0, 1.0)


def write_wav(path: str | os.PathLike[str], wav: np.ndarray | torch.Tensor, sr: int) -> None:
    """Write mono audio as 16-bit PCM, atomically (temp file in the same dir + os.replace)."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    data = np.asarray(wav, dtype=np.float32).squeeze()
    if data.ndim != 1:
        raise AudioError(f"{path}: write_wav needs mono audio, got shape {np.shape(wav)}")
    # libsndfile wraps (not clips) out-of-range floats when converting to int16.
    data = np.clip(np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    target = Path(path)
    # rundir's temp naming (cleaned at the next start) and mode 0o666, so the umask applies
    # (mkstemp would make every sample 0600).
    # Encoded in memory first: libsndfile's callbacks into a failing file object print
    # tracebacks ("Exception ignored from cffi callback") instead of raising.
    buf = io.BytesIO()
    sf.write(buf, data, sr, subtype="PCM_16", format="WAV")
    tmp = temp_path_for(target)
    fd = open_exclusive(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__


# ----------------------------------------------------------------------------- mel scale

_F_SP = 200.0 / 3.0  # slaney: 3 mels per 200 Hz below the break
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa htk=False)."""
    f = np.asarray(hz, dtype=np.float64)
    mel = f / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    m = np.asarray(mel, dtype=np.float64)
    hz = m * _F_SP
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log_part, hz)


def mel_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular slaney mel filters with area normalisation, shape [n_mels, n_fft // 2 + 1]."""
    if fmax is None:
        fmax = sr / 2.0
    fft_hz = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)
    dist = edges_hz[:, None] - fft_hz[None, :]  # [n_mels + 2, n_bins]
    rising = -dist[:-2] / widths[:-1, None]
    falling = dist[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Area normalisation: each triangle's integral over Hz is the same (slaney).
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


class MelSpectrogram(nn.Module):
    """Log-mel spectrogram as in reference HiFi-GAN; runs on its input's device, in float32."""

    def __init__(self, cfg: AudioConfig) -> None:
        super().__init__()
        if cfg.hop_length > cfg.n_fft:
            raise ValueError(f"hop_length ({cfg.hop_length}) must not exceed n_fft ({cfg.n_fft})")
        self.n_fft = cfg.n_fft
        self.hop = cfg.hop_length
        self.win_length = cfg.win_length
        # (n_fft - hop) / 2 each side as in the reference; an odd remainder goes right so the
        # frame count is always T // hop.
        self.pad_left = (cfg.n_fft - cfg.hop_length) // 2
        self.pad_right = cfg.n_fft - cfg.hop_length - self.pad_left
        basis = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
        # Non-persistent: derived from the config, so kept out of checkpoints.
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, T] or [B, 1, T] audio -> [B, n_mels, T // hop] log-mel."""
        if wav.dim() == 3:
            if wav.size(1) != 1:
                raise ValueError(f"MelSpectrogram expects [B, 1, T] audio, got {tuple(wav.shape)}")
            wav = wav.squeeze(1)
        elif wav.dim() != 2:
            raise ValueError(f"MelSpectrogram expects [B, T] or [B, 1, T], got {tuple(wav.shape)}")
        with torch.autocast(device_type=wav.device.type, enabled=False):
            x = wav.float()
            x = torch.nn.functional.pad(
                x.unsqueeze(1), (self.pad_left, self.pad_right), mode="reflect"
            )
            spec = torch.stft(
                x.squeeze(1),
                self.n_fft,
                hop_length=self.hop,
                win_length=self.win_length,
                window=self.window.float(),  # no-op unless a parent called .half()
                center=False,
                normalized=False,
                onesided=True,
                return_complex=True,
            )
            mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + MAG_EPS)
            mel = torch.matmul(self.mel_basis.float(), mag)
            return torch.log(torch.clamp(mel, min=LOG_FLOOR))
