"""Mel pictures (.logmel): the trainer's quantised log-mel and the pure-Python reader."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from trainer.config.schema import AudioConfig
from trainer.rundir import melpic
from trainer.train.pictures import DB_PER_NEPER, mel_picture


def _pack(mels: int = 2, frames: int = 3, pixels: bytes | None = None) -> bytes:
    return melpic.pack(
        pixels if pixels is not None else bytes(range(mels * frames)),
        mels,
        frames,
        -70.0,
        10.0,
        sample_rate=22050,
        frame_hop=256,
        fmin=0.0,
        fmax=8000.0,
        seconds=1.5,
    )


def test_pack_and_decode_round_trip() -> None:
    pic = melpic.decode(_pack())
    assert (pic.mels, pic.frames, pic.db_min, pic.db_max) == (2, 3, -70.0, 10.0)
    assert (pic.sample_rate, pic.frame_hop, pic.fmax, pic.seconds) == (22050, 256, 8000.0, 1.5)
    assert pic.pixels == bytes(range(6))
    assert pic.db(1, 2) == pytest.approx(-70.0 + 5 * 80 / 255)


def test_the_trainers_picture_is_db_pooled_and_quantised() -> None:
    audio = AudioConfig(sample_rate=16000, hop_length=100, n_mels=200, fmax=None)
    # A log-mel whose top band is 0 dB and whose bottom band is 100 dB lower; 1500 frames.
    db = np.linspace(-100.0, 0.0, 200, dtype=np.float32)[:, None].repeat(1500, axis=1)
    pic = melpic.decode(mel_picture(db / DB_PER_NEPER, audio, 150000))
    # 200 bands -> groups of 2 -> 100 rows; 1500 frames -> groups of 3 -> 500 columns.
    assert (pic.mels, pic.frames, pic.frame_hop) == (100, 500, 300)
    assert pic.db_max == math.ceil(float(db[-2:].mean())) and pic.db_max - pic.db_min == 80
    assert pic.pixels[-1] == 255 - round(255 * (pic.db_max - db[-2:].mean()) / 80)
    assert pic.pixels[0] == 0  # 100 dB down is below the 80 dB range: clipped, not wrapped
    assert pic.fmax == 8000.0 and pic.seconds == pytest.approx(9.375)
    col = [pic.pixels[r * pic.frames + 7] for r in range(pic.mels)]
    assert col == sorted(col)  # rising with the band, as the log-mel does


def test_non_finite_log_mel_values_still_make_a_picture() -> None:
    audio = AudioConfig()
    x = np.zeros((80, 10), np.float32)
    x[3, 4] = np.nan
    x[5, 5] = -np.inf
    pic = melpic.decode(mel_picture(x, audio, 2560))
    assert pic.pixels[3 * 10 + 4] == 0 and pic.pixels[5 * 10 + 5] == 0


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"RIFF....", "bad magic"),
        (melpic.MAGIC + b"{not json\n", "header is not JSON"),
        (melpic.MAGIC + b"[1]\n", "not a JSON object"),
        (melpic.MAGIC + b"x" * 5000, "header line missing"),
        (_pack()[:-1], "5 pixel bytes, expected 6"),
        (_pack().replace(b'"mels":2', b'"mels":999'), "outside"),
        (_pack().replace(b'"db_max":10.0', b'"db_max":-80.0'), "dB range"),
        (_pack().replace(b'"frames":3', b'"frames":"3"'), "'frames' must be an integer"),
    ],
)
def test_a_bad_picture_is_refused_with_one_line_naming_the_file(data: bytes, why: str) -> None:
    with pytest.raises(melpic.PictureError) as e:
        melpic.decode(data, "samples/x.logmel")
    assert str(e.value).startswith("samples/x.logmel: ") and why in str(e.value)
    assert "\n" not in str(e.value)


def test_read_picture_names_a_missing_or_oversized_file(tmp_path: Path) -> None:
    with pytest.raises(melpic.PictureError, match="no such file"):
        melpic.read_picture(tmp_path / "gone.logmel")
    big = tmp_path / "big.logmel"
    big.write_bytes(b"\0" * (melpic.MAX_FILE + 1))
    with pytest.raises(melpic.PictureError, match="larger than any mel picture"):
        melpic.read_picture(big)
    good = tmp_path / "a_gen.logmel"
    good.write_bytes(_pack())
    assert melpic.read_picture(good).frames == 3
    assert melpic.picture_path("samples/step_00000002/a_gen.wav") == Path(
        "samples/step_00000002/a_gen.logmel"
    )


def test_pack_refuses_sizes_outside_the_format() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        _pack(129, 1, bytes(129))
    with pytest.raises(ValueError, match="pixels"):
        _pack(2, 2, bytes(3))
