"""Corpus rules (trainer.corpus): WAV/.npy headers with the real data length, and
check_corpus's findings, on real files written byte by byte or with soundfile."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trainer.config.schema import AudioConfig, Config, DataConfig, LossConfig, TrainConfig
from trainer.corpus.check import check_corpus, mel_length_problem, min_validation_samples
from trainer.corpus.headers import HeaderError, read_npy_header, read_wav_header
from trainer.corpus.metadata import split_ids
from trainer.corpus.report import (
    LEVEL_ERROR,
    LEVEL_WARNING,
    RULE_BATCH,
    RULE_CORPUS_DIR,
    RULE_ENCODING,
    RULE_HEADER_ONLY,
    RULE_MELS,
    RULE_MISSING,
    RULE_MONO,
    RULE_NOT_WAV,
    RULE_SAMPLE_RATE,
    RULE_SHORT_CLIPS,
    RULE_SHORTER_THAN_HOP,
    RULE_TRUNCATED,
    RULE_UNSEEN,
    RULE_VAL_SIZE,
    RULE_VAL_TOO_SHORT,
)

SR = 16000
HOP = 128


def wav_bytes(
    frames: int = 1000,
    sr: int = SR,
    channels: int = 1,
    bits: int = 16,
    tag: int = 1,
    extensible: bool = False,
    before_data: bytes = b"",
    after_data: bytes = b"",
    declared: int | None = None,
    data_chunk: bool = True,
    form: bytes = b"RIFF",
) -> bytes:
    """A RIFF/WAVE file assembled by hand (so headers can lie)."""
    align = channels * bits // 8
    if extensible:
        guid = struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        body = struct.pack("<HHIIHH", 0xFFFE, channels, sr, sr * align, align, bits)
        body += struct.pack("<HHI", 22, bits, 0) + guid
    else:
        body = struct.pack("<HHIIHH", tag, channels, sr, sr * align, align, bits)
    out = b"fmt " + struct.pack("<I", len(body)) + body + before_data
    if data_chunk:
        data = bytes(range(256)) * (frames * align // 256 + 1)
        data = data[: frames * align]
        size = len(data) if declared is None else declared
        out += b"data" + struct.pack("<I", size) + data + (b"\0" if len(data) % 2 else b"")
        out += after_data
    return form + struct.pack("<I", 4 + len(out)) + b"WAVE" + out


def chunk(cid: bytes, payload: bytes) -> bytes:
    return cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


@pytest.mark.parametrize("bits, tag", [(8, 1), (16, 1), (24, 1), (32, 1), (32, 3), (64, 3)])
def test_wav_header_encodings_agree_with_soundfile(tmp_path: Path, bits: int, tag: int) -> None:
    p = tmp_path / "a.wav"
    p.write_bytes(wav_bytes(777, bits=bits, tag=tag))
    h = read_wav_header(p)
    assert (h.sample_rate, h.channels, h.bits, h.frames) == (SR, 1, bits, 777)
    assert sf.info(str(p)).frames == h.frames


def test_extensible_odd_chunks_and_chunks_after_data(tmp_path: Path) -> None:
    p = tmp_path / "a.wav"
    p.write_bytes(
        wav_bytes(
            501,
            bits=24,
            extensible=True,
            before_data=chunk(b"LIST", b"odd"),  # 3 bytes + a pad byte
            after_data=chunk(b"id3 ", b"x" * 33),
        )
    )
    h = read_wav_header(p)
    assert (h.format_tag, h.bits, h.frames, h.truncated) == (1, 24, 501, False)
    assert sf.info(str(p)).frames == 501


def test_rf64_uses_the_ds64_size(tmp_path: Path) -> None:
    frames = 300
    body = struct.pack("<HHIIHH", 1, 1, SR, SR * 2, 2, 16)
    ds64 = struct.pack("<QQQI", 0, frames * 2, frames, 0)
    data = b"\1\0" * frames
    raw = (
        b"RF64"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + chunk(b"ds64", ds64)
        + chunk(b"fmt ", body)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
        + data
    )
    (tmp_path / "a.wav").write_bytes(raw)
    assert read_wav_header(tmp_path / "a.wav").frames == frames


def test_truncated_wav_names_header_and_real_length(tmp_path: Path) -> None:
    p = tmp_path / "a.wav"
    p.write_bytes(wav_bytes(1000, declared=64000))  # header claims 32000 frames
    with pytest.raises(HeaderError) as e:
        read_wav_header(p)
    assert e.value.rule == RULE_TRUNCATED
    assert "claims 64000 bytes" in str(e.value) and "holds 2000" in str(e.value)


@pytest.mark.parametrize(
    "raw",
    [
        wav_bytes(data_chunk=False),
        wav_bytes(0),
        wav_bytes(1000)[:44],  # header only: data chunk claims 2000 bytes, none there
    ],
    ids=["no-data-chunk", "empty-data-chunk", "cut-after-header"],
)
def test_header_only_wavs(tmp_path: Path, raw: bytes) -> None:
    p = tmp_path / "a.wav"
    p.write_bytes(raw)
    with pytest.raises(HeaderError) as e:
        read_wav_header(p)
    assert e.value.rule == RULE_HEADER_ONLY


def test_flac_named_wav_is_named_as_flac(tmp_path: Path) -> None:
    p = tmp_path / "a.wav"
    sf.write(str(p), np.zeros(2000, np.float32), SR, format="FLAC")
    with pytest.raises(HeaderError, match="is a FLAC file, not RIFF/WAVE") as e:
        read_wav_header(p)
    assert e.value.rule == RULE_NOT_WAV
    (tmp_path / "b.wav").write_bytes(b"")
    with pytest.raises(HeaderError, match="empty file"):
        read_wav_header(tmp_path / "b.wav")


def test_unsupported_encodings(tmp_path: Path) -> None:
    p = tmp_path / "a.wav"
    p.write_bytes(wav_bytes(100, bits=12))
    with pytest.raises(HeaderError, match="12-bit PCM") as e:
        read_wav_header(p)
    assert e.value.rule == RULE_ENCODING
    p.write_bytes(wav_bytes(100, tag=2, bits=4))  # MS ADPCM
    with pytest.raises(HeaderError, match="format tag 0x2"):
        read_wav_header(p)


def test_npy_header_shape_and_truncation(tmp_path: Path) -> None:
    p = tmp_path / "m.npy"
    np.save(p, np.zeros((80, 33), np.float32))
    h = read_npy_header(p)
    assert (h.shape, h.itemsize, h.truncated) == ((80, 33), 4, False)
    p.write_bytes(p.read_bytes()[:-10])
    assert read_npy_header(p).truncated
    np.save(p, np.asfortranarray(np.zeros((2, 3), np.float64)))
    h = read_npy_header(p)
    assert h.fortran_order and h.itemsize == 8
    np.save(p, np.array(["a", "b"]))
    with pytest.raises(HeaderError, match="not a numeric array"):
        read_npy_header(p)


# ------------------------------------------------------------------------ check_corpus

AUDIO = AudioConfig(
    sample_rate=SR, n_fft=512, win_length=512, hop_length=HOP, n_mels=16, segment_size=2048
)


def make(tmp_path: Path, lengths: list[int], **data_kw) -> Config:
    root = tmp_path / "c"
    (root / "wavs").mkdir(parents=True)
    lines = []
    for i, n in enumerate(lengths):
        sf.write(str(root / "wavs" / f"U{i:02d}.wav"), np.zeros(n, np.float32) + 0.1, SR)
        lines.append(f"U{i:02d}|t|t")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    data = DataConfig(corpus_dir=str(root), val_size=2, split_seed=3, **data_kw)
    return Config(
        audio=AUDIO,
        data=data,
        loss=LossConfig(stft_resolutions=((256, 64, 256), (1024, 256, 1024))),
        train=TrainConfig(batch_size=2),
    )


def wav(cfg: Config, uid: str) -> Path:
    return Path(cfg.data.corpus_dir) / "wavs" / f"{uid}.wav"


def test_a_clean_corpus_passes(tmp_path: Path) -> None:
    cfg = make(tmp_path, [4000] * 8)
    r = check_corpus(cfg)
    assert r.ok and not r.findings
    assert len(r.train_ids) == 6 and len(r.val_ids) == 2
    assert all(c.num_samples == 4000 for c in r.clips.values())


def test_each_bad_file_is_refused_with_its_rule_and_name(tmp_path: Path) -> None:
    cfg = make(tmp_path, [4000] * 10)
    sf.write(str(wav(cfg, "U01")), np.zeros(4000, np.float32), SR, format="FLAC")
    wav(cfg, "U02").write_bytes(wav_bytes(data_chunk=False))
    wav(cfg, "U03").write_bytes(wav_bytes(1000, declared=8000))
    sf.write(str(wav(cfg, "U04")), np.zeros((4000, 2), np.float32), SR)
    wav(cfg, "U05").unlink()
    r = check_corpus(cfg)
    rules = {f.rule: f for f in r.errors}
    assert set(rules) == {
        RULE_NOT_WAV,
        RULE_HEADER_ONLY,
        RULE_TRUNCATED,
        RULE_MONO,
        RULE_MISSING,
    }
    assert str(wav(cfg, "U01")) in rules[RULE_NOT_WAV].message
    assert "FLAC" in rules[RULE_NOT_WAV].message
    assert rules[RULE_TRUNCATED].files == (str(wav(cfg, "U03")),)
    assert "claims 8000 bytes" in rules[RULE_TRUNCATED].message
    assert "U05.wav" in rules[RULE_MISSING].message
    line = r.error_line()
    assert line.startswith("[") and "\n" not in line and "more problem(s)" in line


def test_short_training_clips_are_a_warning_naming_them(tmp_path: Path) -> None:
    cfg = make(tmp_path, [4000] * 10)
    train_ids = split_ids([f"U{i:02d}" for i in range(10)], 2, 3)[0]
    for uid in train_ids[:3]:
        sf.write(str(wav(cfg, uid)), np.zeros(1000, np.float32), SR)
    r = check_corpus(cfg)
    assert r.ok
    f = r.finding(RULE_SHORT_CLIPS)
    assert f is not None and f.level == LEVEL_WARNING
    assert "3 of 8 training clips" in f.message and f"{train_ids[0]}.wav (1000)" in f.message
    assert len(f.files) == 3


def test_validation_clip_shorter_than_the_largest_stft_is_refused(tmp_path: Path) -> None:
    cfg = make(tmp_path, [4000] * 10)
    val_ids = split_ids([f"U{i:02d}" for i in range(10)], 2, 3)[1]
    # 1000 samples trims to 896: enough for the mel's 512, not for the loss's 1024.
    sf.write(str(wav(cfg, val_ids[0])), np.zeros(1000, np.float32), SR)
    assert min_validation_samples(cfg) == 1024
    r = check_corpus(cfg)
    f = r.finding(RULE_VAL_TOO_SHORT)
    assert f is not None and f.level == LEVEL_ERROR
    assert str(wav(cfg, val_ids[0])) in f.message and "896 samples" in f.message


def test_val_size_batch_rate_and_hop_rules(tmp_path: Path) -> None:
    cfg = make(tmp_path, [4000] * 4)
    import dataclasses

    r = check_corpus(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_size=4)))
    assert [f.rule for f in r.errors] == [RULE_VAL_SIZE]
    assert "data.val_size is 4" in r.errors[0].message
    r = check_corpus(cfg, nproc=2)  # 2 train clips, batch 2 x 2 processes
    assert [f.rule for f in r.errors] == [RULE_BATCH] and "x 2 processes" in r.errors[0].message
    sf.write(str(wav(cfg, "U00")), np.zeros(8000, np.float32), 22050)
    r = check_corpus(cfg)
    assert r.ok and r.finding(RULE_SAMPLE_RATE).level == LEVEL_WARNING
    no_resample = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, resample=False))
    assert check_corpus(no_resample).finding(RULE_SAMPLE_RATE).level == LEVEL_ERROR
    sf.write(str(wav(cfg, "U01")), np.zeros(50, np.float32), SR)
    assert check_corpus(cfg).finding(RULE_SHORTER_THAN_HOP) is not None


def test_mels_are_checked_from_their_headers(tmp_path: Path) -> None:
    mels = tmp_path / "m"
    mels.mkdir()
    cfg = make(tmp_path, [4000] * 6, mels_dir=str(mels))
    for i in range(6):
        np.save(mels / f"U{i:02d}.npy", np.zeros((16, 4000 // HOP), np.float32))
    assert check_corpus(cfg).ok
    np.save(mels / "U02.npy", np.zeros((15, 31), np.float32))
    raw = (mels / "U03.npy").read_bytes()
    (mels / "U03.npy").write_bytes(raw[:-100])
    f = check_corpus(cfg).finding(RULE_MELS)
    assert f is not None and "U02.npy" in f.message and "U03.npy" in f.message


def test_missing_corpus_and_demo(tmp_path: Path) -> None:
    cfg = make(tmp_path, [4000] * 4)
    import dataclasses

    gone = dataclasses.replace(cfg.data, corpus_dir=str(tmp_path / "nope"))
    r = check_corpus(dataclasses.replace(cfg, data=gone))
    assert [f.rule for f in r.errors] == [RULE_CORPUS_DIR]
    demo = dataclasses.replace(gone, demo=True)
    r = check_corpus(dataclasses.replace(cfg, data=demo))
    assert r.ok and r.generated_on_start


def test_tick_can_cancel_a_long_check(tmp_path: Path) -> None:
    cfg = make(tmp_path, [4000] * 4)

    class Stop(Exception):
        pass

    def tick() -> None:
        raise Stop

    with pytest.raises(Stop):
        check_corpus(cfg, tick=tick)


def test_mel_length_must_match_the_audio_within_one_hop(tmp_path: Path) -> None:
    """frames x hop within one hop of the audio (4000 samples, hop 128): 31 (uncentred) and
    32 (centred) frames pass; 33 and 30 are named (the old 2-frame rule let them through)."""
    mels = tmp_path / "m"
    mels.mkdir()
    cfg = make(tmp_path, [4000] * 6, mels_dir=str(mels))
    for i in range(6):
        np.save(mels / f"U{i:02d}.npy", np.zeros((16, 31 + i % 2), np.float32))
    r = check_corpus(cfg)
    assert r.ok, r.error_line()
    np.save(mels / "U04.npy", np.zeros((16, 33), np.float32))
    np.save(mels / "U05.npy", np.zeros((1, 16, 30), np.float32))
    f = check_corpus(cfg).finding(RULE_MELS)
    assert f is not None and f.level == LEVEL_ERROR
    assert f.files == (str(mels / "U04.npy"), str(mels / "U05.npy"))
    assert "U04.npy: mel has 33 frames" in f.message and "4000 samples" in f.message
    assert mel_length_problem(31, 4000, 128) is None
    assert mel_length_problem(32, 4000, 128) is None
    assert "within one hop (128)" in mel_length_problem(33, 4000, 128)


def _unseen(tmp_path: Path, cfg: Config, ids: list[str], lengths: list[int]) -> Config:
    import dataclasses

    d = tmp_path / "unseen"
    (d / "wavs").mkdir(parents=True, exist_ok=True)
    for uid, n in zip(ids, lengths, strict=True):
        sf.write(str(d / "wavs" / f"{uid}.wav"), np.zeros(n, np.float32) + 0.1, SR)
    (d / "list.csv").write_text("".join(f"{u}|t|t\n" for u in ids))
    data = dataclasses.replace(cfg.data, unseen_metadata=str(d / "list.csv"))
    return dataclasses.replace(cfg, data=data)


def test_the_unseen_set_follows_the_validation_rules(tmp_path: Path) -> None:
    cfg = _unseen(tmp_path, make(tmp_path, [4000] * 8), ["S1", "S0"], [4000, 3000])
    r = check_corpus(cfg)
    assert r.ok, r.error_line()
    assert r.unseen_ids == ["S0", "S1"] and r.unseen["S0"].num_samples == 3000
    assert sorted(r.clips) == [f"U{i:02d}" for i in range(8)]  # apart from the corpus
    # Each rule applies to it, naming its files: truncated, too short for the largest STFT.
    udir = tmp_path / "unseen" / "wavs"
    (udir / "S1.wav").write_bytes(wav_bytes(1000, declared=8000))
    sf.write(str(udir / "S0.wav"), np.zeros(1000, np.float32), SR)
    r = check_corpus(cfg)
    rules = {f.rule: f for f in r.errors}
    assert set(rules) == {RULE_TRUNCATED, RULE_VAL_TOO_SHORT}
    assert str(udir / "S1.wav") in rules[RULE_TRUNCATED].message
    assert "unseen-set clip of 896 samples" in rules[RULE_VAL_TOO_SHORT].message
    (tmp_path / "unseen" / "list.csv").write_text("")
    assert "no utterances" in check_corpus(cfg).finding(RULE_UNSEEN).message


def test_an_unseen_set_listing_corpus_utterances_is_refused(tmp_path: Path) -> None:
    import dataclasses

    cfg = make(tmp_path, [4000] * 8)
    root = Path(cfg.data.corpus_dir)
    sf.write(str(root / "wavs" / "EXTRA.wav"), np.zeros(4000, np.float32) + 0.1, SR)
    (root / "unseen.csv").write_text("EXTRA|t|t\nU03|t|t\n")
    data = dataclasses.replace(cfg.data, unseen_metadata="unseen.csv")  # beside metadata.csv
    r = check_corpus(dataclasses.replace(cfg, data=data))
    f = r.finding(RULE_UNSEEN)
    assert f is not None and f.level == LEVEL_ERROR
    assert "U03" in f.message and "EXTRA" not in f.message and "not unseen" in f.message
    (root / "unseen.csv").write_text("EXTRA|t|t\n")
    r = check_corpus(dataclasses.replace(cfg, data=data))
    assert r.ok and r.unseen_ids == ["EXTRA"]
    gone = dataclasses.replace(cfg.data, unseen_metadata="nope.csv")
    f = check_corpus(dataclasses.replace(cfg, data=gone)).finding(RULE_UNSEEN)
    assert f is not None and "nope.csv: metadata file not found" in f.message
