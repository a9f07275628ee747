"""Metadata parsing, corpus checks, split, segments, the resumable sampler, validation set."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from trainer.config.schema import AudioConfig, Config, DataConfig, LossConfig, TrainConfig
from trainer.corpus.metadata import parse_metadata
from trainer.corpus.report import DataError
from trainer.data import (
    Corpus,
    ResumableBatchSampler,
    TrainDataset,
    ValidationSet,
    collate,
    segment_seed,
)

SR = 16000
HOP = 128
AUDIO = AudioConfig(
    sample_rate=SR,
    n_fft=512,
    win_length=512,
    hop_length=HOP,
    n_mels=16,
    fmin=0.0,
    fmax=8000.0,
    segment_size=1024,
)


def _load(data: DataConfig, audio: AudioConfig = AUDIO, batch_size: int = 1) -> Corpus:
    cfg = Config(
        audio=audio,
        data=data,
        loss=LossConfig(stft_resolutions=((256, 64, 256),)),
        train=TrainConfig(batch_size=batch_size),
    )
    return Corpus.load(cfg)


def ramp_clip(i: int, n: int) -> np.ndarray:
    """Audio whose sample values encode (clip, position): segments can be located."""
    return ((np.arange(n) % 4096) / 8192.0 + i / 64.0).astype(np.float32)


def make_corpus(root, lengths, sr=SR, mels=None, metadata_lines=None):
    """Write an LJSpeech-format corpus; returns the DataConfig for it."""
    (root / "wavs").mkdir(parents=True)
    lines = []
    for i, n in enumerate(lengths):
        uid = f"U{i:03d}"
        sf.write(root / "wavs" / f"{uid}.wav", ramp_clip(i, n), sr, subtype="FLOAT")
        lines.append(f"{uid}|Text {i}.|text {i}.")
        if mels is not None:
            mels.mkdir(exist_ok=True)
            frames = n * SR // sr // HOP
            mel = np.tile(np.arange(frames, dtype=np.float32), (AUDIO.n_mels, 1))
            np.save(mels / f"{uid}.npy", mel)
    text = "\n".join(metadata_lines if metadata_lines is not None else lines) + "\n"
    (root / "metadata.csv").write_text(text, encoding="utf-8")
    return DataConfig(
        corpus_dir=str(root),
        val_size=2,
        split_seed=7,
        mels_dir=str(mels) if mels is not None else None,
    )


# ------------------------------------------------------------------------------ metadata


def test_metadata_two_and_three_columns_and_blank_lines(tmp_path):
    p = tmp_path / "metadata.csv"
    p.write_text("a|Hello, 1 world.|Hello, one world.\n\n  \nb|Two col\n", encoding="utf-8")
    rows = parse_metadata(p)
    assert [(r.id, r.text, r.normalized_text, r.line) for r in rows] == [
        ("a", "Hello, 1 world.", "Hello, one world.", 1),
        ("b", "Two col", "Two col", 4),
    ]


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("a|x|y\nb|x|y|z\n", ":2", "got 4 field"),
        ("a|x|y\n\nnopipe\n", ":3", "got 1 field"),
        ("a|x|y\n|x|y\n", ":2", "empty utterance id"),
        ("a|x|y\nb|x|y\na|z|z\n", ":3", "duplicate utterance id 'a' (first on line 1)"),
        ("../etc|x|y\n", ":1", "plain file stem"),
    ],
)
def test_metadata_errors_name_file_and_line(tmp_path, content, where, what):
    p = tmp_path / "metadata.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        parse_metadata(p)
    assert f"{p}{where}:" in str(e.value) and what in str(e.value)


def test_metadata_bad_utf8_missing_and_empty(tmp_path):
    p = tmp_path / "metadata.csv"
    p.write_bytes(b"a|ok|ok\nb|caf\xe9|x\n")
    with pytest.raises(DataError, match=r"metadata\.csv:2: not valid UTF-8"):
        parse_metadata(p)
    with pytest.raises(DataError, match="not found"):
        parse_metadata(tmp_path / "none.csv")
    p.write_text("\n\n")
    with pytest.raises(DataError, match="no utterances"):
        parse_metadata(p)


# -------------------------------------------------------------------------------- corpus


def test_missing_wavs_are_listed(tmp_path):
    cfg = make_corpus(tmp_path / "c", [2000] * 10)
    for i in (3, 4, 5, 6, 7, 8, 9):
        (tmp_path / "c" / "wavs" / f"U{i:03d}.wav").unlink()
    with pytest.raises(DataError) as e:
        _load(cfg)
    msg = str(e.value)
    assert "7 of 10" in msg and "U003.wav" in msg and "U007.wav" in msg and "and 2 more" in msg


def test_split_is_deterministic_disjoint_and_order_independent(tmp_path):
    cfg = make_corpus(tmp_path / "c", [2000] * 20)
    a, b = _load(cfg), _load(cfg)
    ids = lambda us: [u.id for u in us]  # noqa: E731
    assert ids(a.train) == ids(b.train) and ids(a.val) == ids(b.val)
    assert len(a.val) == 2 and not set(ids(a.train)) & set(ids(a.val))
    assert set(ids(a.train)) | set(ids(a.val)) == {f"U{i:03d}" for i in range(20)}
    meta = tmp_path / "c" / "metadata.csv"
    meta.write_text("\n".join(reversed(meta.read_text().splitlines())) + "\n")
    assert ids(_load(cfg).val) == ids(a.val)
    other = _load(dataclasses.replace(cfg, split_seed=8, val_size=5))
    assert ids(other.val) != ids(a.val)[:5] and len(other.val) == 5


def test_corpus_rejects_stereo_wrong_rate_tiny_and_too_few(tmp_path):
    cfg = make_corpus(tmp_path / "c", [2000] * 4)
    wavs = tmp_path / "c" / "wavs"
    sf.write(wavs / "U001.wav", np.zeros((2000, 2), np.float32), SR)
    with pytest.raises(DataError, match=r"U001\.wav: has 2 channels"):
        _load(cfg)
    sf.write(wavs / "U001.wav", np.zeros(2000, np.float32), 22050)
    with pytest.raises(DataError, match=r"U001\.wav: sample rate is 22050 Hz.*16000"):
        _load(dataclasses.replace(cfg, resample=False))
    assert _load(cfg).train  # resampled by default
    sf.write(wavs / "U001.wav", np.zeros(10, np.float32), SR)
    with pytest.raises(DataError, match=r"U001\.wav: only 10 samples"):
        _load(cfg)
    with pytest.raises(DataError, match="val_size is 4"):
        _load(dataclasses.replace(cfg, val_size=4))
    with pytest.raises(DataError, match="corpus directory not found"):
        _load(dataclasses.replace(cfg, corpus_dir=str(tmp_path / "nope")))


# ------------------------------------------------------------------------------ segments


def test_segments_are_real_slices_seeded_and_padded(tmp_path):
    cfg = make_corpus(tmp_path / "c", [5000, 6000, 700, 3000, 4000, 2500])
    corpus = _load(cfg)
    ds = TrainDataset(corpus)
    assert ds.preloaded and len(ds) == 4
    for index, utt in enumerate(corpus.train):
        full = corpus.read(utt)
        starts = set()
        for seed in range(8):
            seg = ds[(index, seed)]["audio"]
            assert seg.shape == (1024,) and seg.dtype == np.float32
            np.testing.assert_array_equal(seg, ds[(index, seed)]["audio"])
            if len(full) >= 1024:
                hits = [
                    s for s in range(len(full) - 1023) if np.array_equal(full[s : s + 1024], seg)
                ]
                assert hits
                starts.add(hits[0])
            else:  # shorter than a segment: the clip, then zeros
                np.testing.assert_array_equal(seg[: len(full)], full)
                assert not seg[len(full) :].any()
        if len(full) > 1100:
            assert len(starts) > 1  # the seed moves the offset


def test_lazy_reading_equals_preloaded_including_resampled(tmp_path):
    cfg = make_corpus(tmp_path / "c", [5000, 6000, 700, 3000, 4000, 2500])
    sf.write(tmp_path / "c" / "wavs" / "U002.wav", ramp_clip(2, 9000), 22050, subtype="FLOAT")
    corpus = _load(cfg)
    eager, lazy = TrainDataset(corpus, preload=True), TrainDataset(corpus, preload=False)
    assert not lazy.preloaded
    for index in range(len(eager)):
        for seed in (1, 2, 3):
            np.testing.assert_array_equal(
                eager[(index, seed)]["audio"], lazy[(index, seed)]["audio"]
            )


def test_collate_shapes():
    batch = [{"audio": np.zeros(1024, np.float32), "mel": np.ones((16, 8), np.float32)}] * 3
    out = collate(batch)
    assert out["audio"].shape == (3, 1, 1024) and out["audio"].dtype == torch.float32
    assert out["mel"].shape == (3, 16, 8)
    assert set(collate([{"audio": np.zeros(4, np.float32)}])) == {"audio"}


# ------------------------------------------------------------------------------- sampler


def epoch_batches(sampler: ResumableBatchSampler, epoch: int, start: int = 0):
    sampler.set_epoch(epoch)
    sampler.set_start(start)
    return list(sampler)


def test_sampler_deterministic_per_epoch_and_covers_data():
    a = ResumableBatchSampler(23, 4, seed=5)
    b = ResumableBatchSampler(23, 4, seed=5)
    assert len(a) == 5
    e0, e1 = epoch_batches(a, 0), epoch_batches(a, 1)
    assert e0 == epoch_batches(b, 0) and e1 == epoch_batches(b, 1)
    assert e0 != e1
    assert all(len(batch) == 4 for batch in e0)
    flat = [i for batch in e0 for i, _ in batch]
    assert len(set(flat)) == 20 and set(flat) <= set(range(23))
    seeds = [s for batch in e0 + e1 for _, s in batch]
    assert len(set(seeds)) == len(seeds)  # new segment offsets each epoch
    assert epoch_batches(ResumableBatchSampler(23, 4, seed=6), 0) != e0
    assert len(ResumableBatchSampler(23, 4, seed=5, drop_last=False)) == 6


def test_set_start_resumes_exactly_where_it_stopped():
    s = ResumableBatchSampler(40, 3, seed=1)
    full = epoch_batches(s, 3)
    resumed = ResumableBatchSampler(40, 3, seed=1)
    assert epoch_batches(resumed, 3, start=5) == full[5:]
    resumed.set_epoch(4)  # the next epoch starts from its beginning again
    assert list(resumed) == epoch_batches(s, 4)
    assert epoch_batches(resumed, 3, start=len(s)) == []
    with pytest.raises(ValueError, match="outside"):
        resumed.set_start(len(s) + 1)


def test_two_ranks_get_disjoint_shards_with_distinct_seeds():
    r0 = ResumableBatchSampler(32, 4, seed=9, rank=0, world_size=2)
    r1 = ResumableBatchSampler(32, 4, seed=9, rank=1, world_size=2)
    assert len(r0) == len(r1) == 4
    b0, b1 = epoch_batches(r0, 2), epoch_batches(r1, 2)
    i0 = {i for b in b0 for i, _ in b}
    i1 = {i for b in b1 for i, _ in b}
    assert not i0 & i1 and i0 | i1 == set(range(32))
    s0 = {s for b in b0 for _, s in b}
    s1 = {s for b in b1 for _, s in b}
    assert not s0 & s1


def test_segment_seed_is_a_pure_function():
    assert segment_seed(1, 2, 3) == segment_seed(1, 2, 3)
    vals = {segment_seed(1, e, p) for e in range(5) for p in range(50)}
    assert len(vals) == 250 and all(0 <= v < 2**63 for v in vals)
    assert segment_seed(2, 0, 0) != segment_seed(1, 0, 0)


def test_sampler_rejects_corpus_smaller_than_a_batch():
    with pytest.raises(DataError, match="fewer than one batch"):
        ResumableBatchSampler(3, 4, seed=0)
    with pytest.raises(DataError, match="2 process"):
        ResumableBatchSampler(7, 4, seed=0, world_size=2)
    assert len(ResumableBatchSampler(3, 4, seed=0, drop_last=False)) == 1


def test_dataloader_with_persistent_workers_matches_single_process(tmp_path):
    cfg = make_corpus(tmp_path / "c", [3000 + 100 * i for i in range(12)])
    ds = TrainDataset(_load(cfg))

    def run(num_workers: int) -> list[torch.Tensor]:
        sampler = ResumableBatchSampler(len(ds), 3, seed=4)
        loader = DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )
        out = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            out += [b["audio"] for b in loader]
        sampler.set_epoch(1)
        sampler.set_start(2)
        out += [b["audio"] for b in loader]  # a resume mid-epoch through the same loader
        return out

    single, multi = run(0), run(2)
    assert len(single) == 3 + 3 + 1
    for a, b in zip(single, multi, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(single[-1], single[5])


# ---------------------------------------------------------------------- precomputed mels


def test_precomputed_mel_segments_align_with_audio(tmp_path):
    cfg = make_corpus(tmp_path / "c", [5000, 6000, 700, 3000, 4000, 2500], mels=tmp_path / "m")
    corpus = _load(cfg)
    assert corpus.has_mels
    for preload in (True, False):
        ds = TrainDataset(corpus, preload=preload)
        for index, utt in enumerate(corpus.train):
            full = corpus.read(utt)
            for seed in range(4):
                item = ds[(index, seed)]
                mel, audio = item["mel"], item["audio"]
                assert mel.shape == (16, 1024 // HOP) and audio.shape == (1024,)
                start = int(mel[0, 0])  # the fixture's mel stores its frame index
                expect = full[start * HOP : start * HOP + 1024]
                np.testing.assert_array_equal(audio[: len(expect)], expect)
                if len(full) < 1024:
                    assert start == 0 and mel[0, -1] == pytest.approx(np.log(1e-5))
    batch = collate([ds[(0, 1)], ds[(1, 1)]])
    assert batch["mel"].shape == (2, 16, 8)


def test_precomputed_mel_errors_name_the_file(tmp_path):
    mels = tmp_path / "m"
    cfg = make_corpus(tmp_path / "c", [4000] * 4, mels=mels)
    np.save(mels / "U001.npy", np.zeros((15, 31), np.float32))
    with pytest.raises(DataError, match=r"U001\.npy: mel shape \(15, 31\)"):
        _load(cfg)
    np.save(mels / "U001.npy", np.zeros((16, 20), np.float32))
    with pytest.raises(DataError, match=r"U001\.npy: mel has 20 frames.*4000 samples"):
        _load(cfg)
    np.save(mels / "U001.npy", np.zeros((1, 16, 32), np.float32))  # [1, n_mels, T] + 1 frame
    assert _load(cfg).has_mels
    (mels / "U001.npy").unlink()
    with pytest.raises(DataError, match=r"U001\.npy: precomputed mel not found"):
        _load(cfg)
    (mels / "U001.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"\[mels\] \S*U001\.npy: not a \.npy file"):
        _load(cfg)
    with pytest.raises(DataError, match="mel directory not found"):
        _load(dataclasses.replace(cfg, mels_dir=str(tmp_path / "nomels")))


# ------------------------------------------------------------------------------ validation


def test_validation_set_is_whole_trimmed_and_ordered(tmp_path):
    cfg = make_corpus(tmp_path / "c", [5000, 6000, 700, 3000, 4000, 2500], mels=tmp_path / "m")
    corpus = _load(dataclasses.replace(cfg, val_size=3))
    val = ValidationSet(corpus)
    assert [v.id for v in val] == sorted(u.id for u in corpus.val)
    for item, utt in zip(val, corpus.val, strict=True):
        full = corpus.read(utt)
        assert len(item.audio) == len(full) // HOP * HOP
        np.testing.assert_array_equal(item.audio, full[: len(item.audio)])
        assert item.mel.shape == (16, len(item.audio) // HOP)
        assert item.audio_tensor().shape == (1, 1, len(item.audio))
        assert item.text.startswith("text ")
