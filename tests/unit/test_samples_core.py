"""The samples view's headless core: which validations have samples on disk, pictures as
grids of dB pixels (orientation, size, difference), colours, the picture cache, the player
choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from nal_tui.core.reducer.validation import validation_view
from nal_tui.core.samples import colormap
from nal_tui.core.samples.catalog import list_validations, metrics_of
from nal_tui.core.samples.pictures import PictureCache
from nal_tui.core.samples.player import find_player
from nal_tui.core.samples.raster import colours, db_grid, difference
from tests.factory import val_record
from trainer.rundir import melpic


def picture(mels: int, frames: int, value=lambda r, c: r, db_max: float = 0.0) -> bytes:
    """A picture whose byte at (band r, frame c) is ``value(r, c)``."""
    px = bytes(value(r, c) % 256 for r in range(mels) for c in range(frames))
    return melpic.pack(px, mels, frames, db_max - 80.0, db_max, sample_rate=16000,
                       frame_hop=128, fmin=0.0, fmax=8000.0, seconds=1.0)  # fmt: skip


def sample_files(run: Path, step: int, utts=("u1", "u2"), unseen=(), pics=True) -> None:
    for set_dir, ids in (("", utts), ("unseen", unseen)):
        d = run / "samples" / f"step_{step:08d}" / set_dir
        g = run / "samples" / "gt" / set_dir
        d.mkdir(parents=True, exist_ok=True)
        g.mkdir(parents=True, exist_ok=True)
        for u in ids:
            (d / f"{u}_gen.wav").write_bytes(b"RIFF")
            (g / f"{u}.wav").write_bytes(b"RIFF")
            if pics:
                (d / f"{u}_gen.logmel").write_bytes(picture(4, 8))
                (g / f"{u}.logmel").write_bytes(picture(4, 8))


def test_validations_on_disk_oldest_first_with_both_sets(tmp_path: Path) -> None:
    sample_files(tmp_path, 200, unseen=("s9",))
    sample_files(tmp_path, 100)
    sample_files(tmp_path, 300)
    (tmp_path / "samples" / "step_00000400").mkdir()  # an empty one is not listed
    (tmp_path / "samples" / "step_00000200" / ".u3_gen.wav.ab12.tmp").write_bytes(b"")
    sets = list_validations(tmp_path)
    assert [s.step for s in sets] == [100, 200, 300]
    s = sets[1]
    assert [(x.utt, x.set) for x in s.samples] == [("u1", "val"), ("u2", "val"), ("s9", "unseen")]
    assert s.samples[2].gen_wav == "samples/step_00000200/unseen/s9_gen.wav"
    assert s.samples[2].gt_pic == "samples/gt/unseen/s9.logmel"
    assert s.find("u2", "val").gen_pic == "samples/step_00000200/u2_gen.logmel"
    # Beyond the live branch's last step (an abandoned branch's samples): left out.
    assert [s.step for s in list_validations(tmp_path, upto=250)] == [100, 200]
    assert list_validations(tmp_path / "nowhere") == [] and list_validations(None) == []


def test_metrics_of_a_validation_come_from_its_val_record() -> None:
    views = [
        validation_view(val_record(100, metrics={"mel_l1": 0.9}, set="val")),
        validation_view(val_record(100, metrics={"mel_l1": 1.5}, set="unseen")),
        validation_view(val_record(200, metrics={"mel_l1": 0.7}, set="val")),
    ]
    assert metrics_of(views, 100, "unseen") == (("mel_l1", 1.5),)
    assert metrics_of(views, 200, "val") == (("mel_l1", 0.7),)
    assert metrics_of(views, 300, "val") == ()


def test_grid_puts_the_highest_band_on_top_and_averages_frames() -> None:
    pic = melpic.decode(picture(4, 8, lambda r, c: 10 * r + c))
    g = db_grid(pic, 4, 2)  # 2 frames per column, 2 bands per pixel row
    scale = 80 / 255
    # Top row: bands 2 and 3; column 0: frames 0 and 1 -> mean byte 25.5.
    assert g.values[0][0] == pytest.approx(-80 + 25.5 * scale)
    assert g.values[1][3] == pytest.approx(-80 + (5 + 6.5) * scale)
    assert (g.rows, g.cols, g.lo, g.hi) == (2, 4, -80.0, 0.0)
    big = db_grid(pic, 16, 8)  # growing repeats pixels
    assert (big.rows, big.cols) == (8, 16) and big.values[-1][0] == big.values[-1][1]


def test_difference_is_generated_minus_truth_on_a_fixed_scale() -> None:
    gen = db_grid(melpic.decode(picture(2, 2, lambda r, c: 200)), 2, 2)
    truth = db_grid(melpic.decode(picture(2, 2, lambda r, c: 100)), 2, 2)
    d = difference(gen, truth)
    assert d.values == [[pytest.approx(100 * 80 / 255)] * 2] * 2
    assert (d.lo, d.hi) == (-20.0, 20.0)
    px = colours(d, "diverging")
    assert px[0][0] == colormap.TABLES["diverging"][-1]  # +31 dB: clipped to the top (red)


def test_colormaps_run_dark_to_light_and_clip() -> None:
    for name in colormap.NAMES:
        lo, hi = colormap.lookup(name, 0.0), colormap.lookup(name, 1.0)
        assert sum(hi) > sum(lo)
        assert colormap.lookup(name, -3) == lo and colormap.lookup(name, 9) == hi
        assert colormap.lookup(name, float("nan")) == lo
    assert colormap.lookup("magma", 0.0) == (0, 0, 4)


def test_picture_cache_reads_once_rereads_on_change_and_explains_failures(tmp_path: Path) -> None:
    cache = PictureCache()
    p = tmp_path / "a_gen.logmel"
    assert "no such file" in cache.get(p)
    (tmp_path / "a_gen.wav").write_bytes(b"RIFF")
    assert "no mel picture beside a_gen.wav" in cache.get(p)
    p.write_bytes(picture(2, 3))
    first = cache.get(p)
    assert first.frames == 3 and cache.get(p) is first
    p.write_bytes(picture(2, 5))
    assert cache.get(p).frames == 5
    p.write_bytes(b"NALMEL1\n{\x1b[31m}\n")
    why = cache.get(p)
    assert isinstance(why, str) and "header is not JSON" in why and "\x1b" not in why


def test_player_choice_in_order_or_why_not() -> None:
    on_path = {"paplay": "/usr/bin/paplay", "ffplay": "/usr/bin/ffplay"}
    player, why = find_player(on_path.get, env={})
    assert player.name == "paplay" and player.argv == ("/usr/bin/paplay",) and why == ""
    player, why = find_player({}.get, env={})
    assert player is None and why.startswith("no audio player on PATH (aplay, paplay")
    player, why = find_player(on_path.get, env={"SSH_CONNECTION": "10.0.0.1 5 10.0.0.2 22"})
    assert player is None and "remote session" in why
    player, _ = find_player(on_path.get, env={"SSH_TTY": "/dev/pts/1", "PULSE_SERVER": "tcp:x"})
    assert player.name == "paplay"
