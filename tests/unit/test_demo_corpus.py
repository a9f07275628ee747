"""The generated demo corpus: deterministic, atomic, LJSpeech-format and speech-like."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.factory import tree_digest
from trainer.config.schema import AudioConfig, Config, DataConfig
from trainer.corpus.metadata import parse_metadata
from trainer.data import Corpus
from trainer.demo_corpus import MARKER, DemoCorpusError, ensure_demo_corpus, main

SR = 16000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return ensure_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", SR, n_utterances=8)


def test_generation_is_byte_identical_and_seeded(tmp_path, corpus):
    again = ensure_demo_corpus(tmp_path / "again", SR, n_utterances=8)
    assert tree_digest(again) == tree_digest(corpus)
    other = ensure_demo_corpus(tmp_path / "other", SR, n_utterances=8, seed=1)
    assert tree_digest(other) != tree_digest(corpus)


def test_layout_is_ljspeech(corpus):
    rows = parse_metadata(corpus / "metadata.csv")
    assert [r.id for r in rows] == [f"DEMO-{i:04d}" for i in range(1, 9)]
    for r in rows:
        assert r.text[0].isupper() and r.text.endswith(".") and len(r.text) > 3
        info = sf.info(corpus / "wavs" / f"{r.id}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert 1.0 <= info.duration <= 2.5
    assert (corpus / MARKER).is_file()
    assert not [p for p in corpus.parent.iterdir() if p.name.startswith(".")]  # no temp dirs


def frames(x: np.ndarray, n: int = 512, hop: int = 128) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, n)[::hop]


def estimate_f0(frame: np.ndarray, sr: int) -> float | None:
    w = frame - frame.mean()
    ac = np.correlate(w, w, "full")[len(w) - 1 :]
    lo, hi = int(sr / 300), int(sr / 70)
    lag = lo + int(np.argmax(ac[lo:hi]))
    if lag in (lo, hi - 1) or ac[lag] < 0.5 * ac[0]:  # edge of the search range: not a peak
        return None
    return sr / lag


def test_audio_is_speech_like(corpus):
    for wav_path in sorted((corpus / "wavs").iterdir()):
        x, sr = sf.read(wav_path)
        assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.0, abs=0.1)
        fr = frames(x)
        rms = np.sqrt((fr**2).mean(axis=1))
        db = 20 * np.log10(rms / rms.max() + 1e-12)
        assert (db < -45).mean() > 0.1  # pauses between words
        assert (db > -20).mean() > 0.3  # and plenty of sound
        loud = fr[db > -10]  # vowels dominate the loudest frames
        spec = np.abs(np.fft.rfft(loud * np.hanning(512), axis=1)) ** 2
        freqs = np.fft.rfftfreq(512, 1 / sr)
        assert spec[:, freqs < 4000].sum() / spec.sum() > 0.9
        assert sum(estimate_f0(w, sr) is not None for w in loud) >= 0.5 * len(loud)  # voiced
        f0 = np.array([f for f in (estimate_f0(w, sr) for w in fr[db > -25]) if f])
        assert np.mean((f0 > 85) & (f0 < 260)) > 0.9  # allow an odd octave error
        lo, mid, hi = np.percentile(f0, [5, 50, 95])
        assert (hi - lo) / mid > 0.08  # intonation, not a drone
        assert not np.array_equal(x[: sr // 20], np.zeros(sr // 20))  # noise floor, not zeros


def test_existing_complete_corpus_is_left_alone(corpus):
    wav = corpus / "wavs" / "DEMO-0001.wav"
    before = wav.stat().st_mtime_ns
    assert ensure_demo_corpus(corpus, SR, n_utterances=8) == corpus
    assert wav.stat().st_mtime_ns == before


def test_mismatched_or_foreign_directories_are_refused(tmp_path, corpus):
    with pytest.raises(DemoCorpusError, match="sample_rate=16000.*sample_rate=22050"):
        ensure_demo_corpus(corpus, 22050, n_utterances=8)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DemoCorpusError, match="refusing to overwrite"):
        ensure_demo_corpus(mine, SR, n_utterances=2)
    assert (mine / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (ensure_demo_corpus(empty, SR, n_utterances=2) / MARKER).is_file()


def test_cli_and_corpus_load_with_demo_flag(tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--sample-rate", "22050", "--n-utterances", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli")
    assert sf.info(tmp_path / "cli" / "wavs" / "DEMO-0001.wav").samplerate == 22050
    audio = AudioConfig(
        sample_rate=SR, n_fft=512, win_length=512, hop_length=128, n_mels=64, segment_size=4096
    )
    data = DataConfig(corpus_dir=str(tmp_path / "auto"), demo=True, val_size=4)
    c = Corpus.load(Config(audio=audio, data=data))
    assert len(c.train) == 44 and len(c.val) == 4
