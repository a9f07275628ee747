"""A validation sample's log-mel as a mel picture (trainer.rundir.melpic): dB, pooled, uint8.

The log-mel is the one validation already computed for mel L1 (natural log of the clamped
mel magnitude); this only converts, pools to at most 128 x 512 and quantises it.
"""

from __future__ import annotations

import math

import numpy as np

from trainer.config.schema import AudioConfig
from trainer.rundir import melpic

DB_PER_NEPER = 20.0 / math.log(10.0)  # ln(magnitude) -> dB


def _pool(x: np.ndarray, axis: int, limit: int) -> tuple[np.ndarray, int]:
    """Mean over groups of ``k`` along ``axis`` so its size is at most ``limit``; returns k."""
    n = x.shape[axis]
    k = max(1, math.ceil(n / limit))
    if k == 1:
        return x, 1
    pad = (-n) % k
    if pad:
        # The last group repeats its edge value instead of averaging in zeros.
        widths = [(0, 0), (0, 0)]
        widths[axis] = (0, pad)
        x = np.pad(x, widths, mode="edge")
    shape = list(x.shape)
    shape[axis : axis + 1] = [shape[axis] // k, k]
    return x.reshape(shape).mean(axis=axis + 1), k


def mel_picture(log_mel: np.ndarray, audio: AudioConfig, samples: int) -> bytes:
    """``log_mel`` ([n_mels, frames], natural log) as the bytes of a ``.logmel`` file."""
    db = np.asarray(log_mel, dtype=np.float32).reshape(log_mel.shape[-2], log_mel.shape[-1])
    db = np.nan_to_num(db * DB_PER_NEPER, nan=-200.0, posinf=200.0, neginf=-200.0)
    db, _ = _pool(db, 0, melpic.MAX_MELS)
    db, k = _pool(db, 1, melpic.MAX_FRAMES)
    db_max = float(math.ceil(db.max())) if db.size else 0.0
    db_min = db_max - melpic.DYNAMIC_RANGE_DB
    q = np.clip(np.rint((db - db_min) * (melpic.LEVELS / melpic.DYNAMIC_RANGE_DB)), 0, 255)
    mels, frames = db.shape
    return melpic.pack(
        q.astype(np.uint8).tobytes(),
        mels,
        frames,
        db_min,
        db_max,
        sample_rate=audio.sample_rate,
        frame_hop=audio.hop_length * k,
        fmin=audio.fmin,
        fmax=audio.fmax if audio.fmax is not None else audio.sample_rate / 2,
        seconds=samples / audio.sample_rate,
    )
