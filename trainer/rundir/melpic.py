"""Mel pictures: the compact log-mel image the trainer writes beside each validation sample.

One definition of the ``.logmel`` file (docs/events.md, "Mel pictures"): an 8-byte magic,
one line of JSON (the header: size, dB range, axes), then ``mels x frames`` bytes, uint8,
row-major, the lowest mel band first. Byte ``b`` of a pixel stands for
``db_min + b / 255 * (db_max - db_min)`` dB. Pure Python (no numpy) so the dashboard reads
it; the trainer quantises with numpy and packs through :func:`pack`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"NALMEL1\n"
SUFFIX = ".logmel"
MAX_MELS = 128  # rows (mel bands) at most
MAX_FRAMES = 512  # columns (time) at most
MAX_HEADER = 4096  # bytes of the JSON header line
LEVELS = 255  # the top byte value
DYNAMIC_RANGE_DB = 80.0  # db_max - db_min as the trainer writes it
MAX_FILE = len(MAGIC) + MAX_HEADER + MAX_MELS * MAX_FRAMES

# Header keys.
H_MELS = "mels"
H_FRAMES = "frames"
H_DB_MIN = "db_min"
H_DB_MAX = "db_max"
H_SAMPLE_RATE = "sample_rate"
H_FRAME_HOP = "frame_hop"  # audio samples per column (the mel hop times any time pooling)
H_FMIN = "fmin"
H_FMAX = "fmax"
H_SECONDS = "seconds"  # the audio's length


class PictureError(ValueError):
    """A mel picture that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class MelPicture:
    """A decoded picture: ``pixels[row * frames + col]`` (row 0 = lowest band), 0..255."""

    mels: int
    frames: int
    db_min: float
    db_max: float
    sample_rate: int
    frame_hop: int
    fmin: float
    fmax: float
    seconds: float
    pixels: bytes

    def db(self, row: int, col: int) -> float:
        """The level of one pixel in dB."""
        b = self.pixels[row * self.frames + col]
        return self.db_min + b * (self.db_max - self.db_min) / LEVELS


def picture_path(wav_path: str | os.PathLike[str]) -> Path:
    """The picture that belongs beside a sample WAV (``x_gen.wav`` -> ``x_gen.logmel``)."""
    return Path(wav_path).with_suffix(SUFFIX)


def pack(
    pixels: bytes,
    mels: int,
    frames: int,
    db_min: float,
    db_max: float,
    *,
    sample_rate: int,
    frame_hop: int,
    fmin: float,
    fmax: float,
    seconds: float,
) -> bytes:
    """The file's bytes; raises ValueError when the sizes do not fit the format."""
    if not (1 <= mels <= MAX_MELS and 1 <= frames <= MAX_FRAMES):
        raise ValueError(f"mel picture of {mels}x{frames} exceeds {MAX_MELS}x{MAX_FRAMES}")
    if len(pixels) != mels * frames:
        raise ValueError(f"mel picture has {len(pixels)} pixels, expected {mels * frames}")
    header = {
        H_MELS: mels,
        H_FRAMES: frames,
        H_DB_MIN: round(float(db_min), 3),
        H_DB_MAX: round(float(db_max), 3),
        H_SAMPLE_RATE: int(sample_rate),
        H_FRAME_HOP: int(frame_hop),
        H_FMIN: float(fmin),
        H_FMAX: float(fmax),
        H_SECONDS: round(float(seconds), 4),
    }
    return MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n" + bytes(pixels)


def _num(h: dict, key: str, name: str, integer: bool = False) -> float:
    v = h.get(key)
    ok = v.__class__ is int if integer else v.__class__ in (int, float)
    if not ok or v != v or v in (float("inf"), float("-inf")):
        kind = "an integer" if integer else "a number"
        raise PictureError(f"{name}: header field {key!r} must be {kind}, got {str(v)[:30]!r}")
    return v


def decode(data: bytes, name: str = "mel picture") -> MelPicture:
    """Bytes of a ``.logmel`` file into a picture; raises PictureError naming what is wrong."""
    if not data.startswith(MAGIC):
        raise PictureError(f"{name}: not a mel picture (bad magic)")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    if end < 0:
        raise PictureError(f"{name}: header line missing or longer than {MAX_HEADER} bytes")
    try:
        h = json.loads(data[len(MAGIC) : end])
    except (ValueError, UnicodeDecodeError):
        raise PictureError(f"{name}: header is not JSON") from None
    if not isinstance(h, dict):
        raise PictureError(f"{name}: header is not a JSON object")
    mels = int(_num(h, H_MELS, name, integer=True))
    frames = int(_num(h, H_FRAMES, name, integer=True))
    if not (1 <= mels <= MAX_MELS and 1 <= frames <= MAX_FRAMES):
        raise PictureError(f"{name}: size {mels}x{frames} outside 1..{MAX_MELS}x1..{MAX_FRAMES}")
    db_min = float(_num(h, H_DB_MIN, name))
    db_max = float(_num(h, H_DB_MAX, name))
    if not db_max > db_min:
        raise PictureError(f"{name}: dB range {db_min}..{db_max} is empty")
    pixels = data[end + 1 :]
    if len(pixels) != mels * frames:
        raise PictureError(
            f"{name}: {len(pixels)} pixel bytes, expected {mels * frames} (truncated file?)"
        )
    return MelPicture(
        mels,
        frames,
        db_min,
        db_max,
        int(_num(h, H_SAMPLE_RATE, name, integer=True)),
        int(_num(h, H_FRAME_HOP, name, integer=True)),
        float(_num(h, H_FMIN, name)),
        float(_num(h, H_FMAX, name)),
        float(_num(h, H_SECONDS, name)),
        bytes(pixels),
    )


def read_picture(path: str | os.PathLike[str]) -> MelPicture:
    """Read and decode one picture file; PictureError (one line) when it cannot be used."""
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE:
            raise PictureError(f"{path}: {size} bytes, larger than any mel picture")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise PictureError(f"{path}: no such file") from None
    except OSError as e:
        raise PictureError(f"{path}: cannot read: {e.strerror or e}") from None
    return decode(data, str(path))
