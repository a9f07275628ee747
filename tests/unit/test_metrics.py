"""Validation metrics on real signals: a copy scores best, added noise scores worse."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from trainer.audio import MelSpectrogram
from trainer.config.schema import AudioConfig
from trainer.demo_corpus import synthesize_utterance
from trainer.train import metrics as M

SR = 22050
AUDIO = AudioConfig(sample_rate=SR)

needs_pesq = pytest.mark.skipif(not M.available(M.PESQ), reason="pesq not installed")
needs_stoi = pytest.mark.skipif(not M.available(M.STOI), reason="pystoi not installed")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    wav, _ = synthesize_utterance(np.random.default_rng(7), SR)
    return wav.astype(np.float32)


@pytest.fixture(scope="module")
def mel_fn() -> MelSpectrogram:
    return MelSpectrogram(AUDIO)


def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x)).astype(np.float32)
    scale = np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return np.clip(x + scale * noise, -1, 1).astype(np.float32)


def test_mel_l1_and_mstft_are_zero_for_a_copy_and_grow_with_noise(speech, mel_fn) -> None:
    assert M.mel_l1(speech, speech, mel_fn) == 0.0
    assert M.mstft_distance(speech, speech) == pytest.approx(0.0, abs=1e-6)
    mild, strong = _noisy(speech, 30), _noisy(speech, 5)
    m_mild, m_strong = M.mel_l1(mild, speech, mel_fn), M.mel_l1(strong, speech, mel_fn)
    s_mild, s_strong = M.mstft_distance(mild, speech), M.mstft_distance(strong, speech)
    assert 0 < m_mild < m_strong
    assert 0 < s_mild < s_strong


def test_tensors_and_arrays_give_the_same_scores(speech, mel_fn) -> None:
    noisy = _noisy(speech, 20)
    as_tensor = M.mel_l1(torch.from_numpy(noisy)[None, None], torch.from_numpy(speech), mel_fn)
    assert as_tensor == pytest.approx(M.mel_l1(noisy, speech, mel_fn), rel=1e-6)


def test_lengths_are_trimmed_to_the_shorter(speech, mel_fn) -> None:
    # A vocoder's output is frames * hop long, a little shorter than its input.
    assert M.mstft_distance(speech[:-100], speech) == pytest.approx(0.0, abs=1e-6)


@needs_pesq
def test_pesq_of_identical_speech_is_near_its_maximum(speech) -> None:
    assert M.pesq_wb(speech, speech, SR) == pytest.approx(M.PESQ_WB_MAX, abs=0.05)


@needs_pesq
def test_pesq_drops_with_noise(speech) -> None:
    clean = M.pesq_wb(speech, speech, SR)
    mild = M.pesq_wb(_noisy(speech, 30), speech, SR)
    strong = M.pesq_wb(_noisy(speech, 5), speech, SR)
    assert clean > mild > strong
    assert strong < 2.5


@needs_pesq
def test_pesq_without_speech_is_unscored_not_zero() -> None:
    silence = np.zeros(SR, dtype=np.float32)
    assert M.pesq_wb(silence, silence, SR) is None


@needs_stoi
def test_stoi_is_one_for_a_copy_and_drops_with_noise(speech) -> None:
    assert M.stoi(speech, speech, SR) == pytest.approx(1.0, abs=1e-6)
    assert M.stoi(_noisy(speech, 20), speech, SR) > M.stoi(_noisy(speech, -5), speech, SR)


@needs_stoi
def test_stoi_of_a_too_short_clip_is_unscored(speech) -> None:
    assert M.stoi(speech[: SR // 10], speech[: SR // 10], SR) is None


def test_composite_is_lower_is_better_and_zero_for_a_perfect_copy() -> None:
    w = M.CompositeWeights()
    perfect = {M.MEL_L1: 0.0, M.MSTFT: 0.0, M.PESQ: M.PESQ_WB_MAX, M.STOI: 1.0}
    assert M.composite(perfect, w) == pytest.approx(0.0)
    worse = {M.MEL_L1: 0.5, M.MSTFT: 1.0, M.PESQ: 3.0, M.STOI: 0.9}
    assert M.composite(worse, w) == pytest.approx(0.5 + 1.0 + (M.PESQ_WB_MAX - 3.0))
    assert M.composite(worse, M.CompositeWeights(mel_l1=2, mstft=0, pesq=0, stoi=10)) == (
        pytest.approx(2 * 0.5 + 10 * 0.1)
    )


def test_composite_is_not_built_from_fewer_terms() -> None:
    assert M.composite({M.MEL_L1: 0.5, M.MSTFT: 1.0}, M.CompositeWeights()) is None
    assert M.composite({M.MEL_L1: 0.5, M.MSTFT: 1.0}, M.CompositeWeights(pesq=0)) == 1.5


@needs_pesq
@needs_stoi
def test_scorer_ranks_a_copy_above_noise(speech, mel_fn) -> None:
    def run(pred):
        s = M.QualityScorer(SR, mel_fn)
        s.score(pred, speech)
        return s.result()

    best, noisy = run(speech), run(_noisy(speech, 15))
    assert set(best) == {M.MEL_L1, M.MSTFT, M.PESQ, M.STOI, M.COMPOSITE}
    for name, higher in M.HIGHER_IS_BETTER.items():
        assert (best[name] > noisy[name]) if higher else (best[name] < noisy[name]), name


def test_missing_package_skips_the_metric_with_one_note(
    speech, mel_fn, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(M, "available", lambda m: m not in (M.PESQ, M.STOI))
    monkeypatch.setattr(M, "_noted", set())
    caplog.set_level(logging.WARNING, logger="nal-train")
    for _ in range(3):
        s = M.QualityScorer(SR, mel_fn)
        s.score(speech, speech)
        assert M.pesq_wb(speech, speech, SR) is None
    res = s.result()
    assert set(res) == {M.MEL_L1, M.MSTFT}  # no PESQ/STOI, and no composite built without them
    assert set(s.skipped) == {M.PESQ, M.STOI}
    notes = [r.message for r in caplog.records if "pesq" in r.message]
    assert len(notes) == 1 and "naudiolab[quality]" in notes[0]


def test_unknown_metric_is_refused(mel_fn) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        M.QualityScorer(SR, mel_fn, metrics=("mel_l1", "mos"))
