"""WAV I/O, the slaney mel filterbank and the HiFi-GAN mel spectrogram."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from trainer.audio import (
    LOG_FLOOR,
    AudioError,
    MelSpectrogram,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    read_wav,
    write_wav,
)
from trainer.config.schema import AudioConfig

DEMO_AUDIO = AudioConfig(
    sample_rate=16000,
    n_fft=512,
    win_length=512,
    hop_length=128,
    n_mels=64,
    fmin=0.0,
    fmax=8000.0,
    segment_size=4096,
)


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


# ------------------------------------------------------------------------------- reading


def test_read_wav_resamples_keeping_length_and_pitch(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(440.0, 22050, 1.0), 22050, subtype="PCM_16")
    wav = read_wav(path, 16000)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 16000) <= 1
    assert abs(peak_hz(wav, 16000) - 440.0) < 2.0
    assert np.abs(wav).max() <= 1.0


def test_read_wav_native_rate_is_exact(tmp_path):
    path = tmp_path / "a.wav"
    x = tone(300.0, 16000, 0.25)
    sf.write(path, x, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_wav(path, 16000, resample=False), x)


def test_read_wav_refuses_other_rate_without_resampling(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, tone(440.0, 22050, 0.1), 22050)
    with pytest.raises(AudioError) as e:
        read_wav(path, 16000, resample=False)
    msg = str(e.value)
    assert str(path) in msg and "22050" in msg and "16000" in msg


def test_read_wav_refuses_stereo(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.zeros((1600, 2), np.float32), 16000)
    with pytest.raises(AudioError, match=r"stereo\.wav.*2 channels"):
        read_wav(path, 16000)


def test_read_wav_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioError, match="broken.wav"):
        read_wav(bad, 16000)
    with pytest.raises(AudioError, match="nothere.wav"):
        read_wav(tmp_path / "nothere.wav", 16000)


# ------------------------------------------------------------------------------- writing


def test_write_wav_is_16_bit_and_clips_instead_of_wrapping(tmp_path):
    path = tmp_path / "out.wav"
    write_wav(path, np.array([0.5, 2.0, -3.0, np.nan], np.float32), 16000)
    info = sf.info(path)
    assert (info.subtype, info.samplerate, info.channels) == ("PCM_16", 16000, 1)
    back, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(back, [0.5, 1.0, -1.0, 0.0], atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temp file left


def test_write_wav_accepts_tensor_and_replaces_atomically(tmp_path):
    path = tmp_path / "s.wav"
    write_wav(path, np.zeros(100, np.float32), 8000)
    write_wav(path, torch.full((1, 1, 50), 0.25), 8000)
    back, sr = sf.read(path, dtype="float32")
    assert sr == 8000 and len(back) == 50 and np.allclose(back, 0.25, atol=1e-4)
    with pytest.raises(AudioError, match="mono"):
        write_wav(tmp_path / "x.wav", np.zeros((2, 10)), 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.wav"]


# ---------------------------------------------------------------------------- mel scale


def test_slaney_mel_scale_breakpoint_and_regions():
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(500.0) == pytest.approx(7.5)  # linear: 3 mels per 200 Hz
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    # Logarithmic above 1 kHz: 27 mels per factor 6.4.
    assert hz_to_mel(6400.0) == pytest.approx(42.0)
    assert hz_to_mel(2000.0) - hz_to_mel(1000.0) == pytest.approx(27 * math.log(2) / math.log(6.4))
    hz = np.array([0.0, 123.0, 999.0, 1000.0, 4321.0, 11025.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-10, atol=1e-9)


def test_filterbank_peaks_support_and_area_normalisation():
    sr, n_fft, n_mels = 16000, 8192, 40
    fb = mel_filterbank(sr, n_fft, n_mels, 0.0, 8000.0)
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == np.float32
    assert (fb >= 0).all()
    bin_hz = sr / n_fft
    freqs = np.arange(n_fft // 2 + 1) * bin_hz
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(8000.0), n_mels + 2))
    for i in range(n_mels):
        lo, centre, hi = edges[i], edges[i + 1], edges[i + 2]
        assert abs(freqs[np.argmax(fb[i])] - centre) <= bin_hz
        assert fb[i].max() == pytest.approx(2.0 / (hi - lo), rel=0.03)
        outside = (freqs <= lo) | (freqs >= hi)
        assert not fb[i][outside].any()
        # Slaney normalisation: every triangle has unit area in Hz.
        assert fb[i].sum() * bin_hz == pytest.approx(1.0, rel=0.03)


def test_filterbank_fmax_none_means_nyquist_and_fmin_respected():
    fb = mel_filterbank(16000, 512, 20, fmin=300.0, fmax=None)
    freqs = np.linspace(0, 8000, 257)
    assert not fb[:, freqs <= 300.0].any()
    assert fb[-1, freqs > 7000].any()


# ---------------------------------------------------------------------- mel spectrogram


def reference_log_mel(x: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Independent numpy version of the HiFi-GAN mel for one clip."""
    pad = (cfg.n_fft - cfg.hop_length) // 2
    y = np.pad(x.astype(np.float64), (pad, pad), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(y, cfg.n_fft)[:: cfg.hop_length]
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft)  # periodic Hann
    spec = np.fft.rfft(frames * win, axis=1)
    mag = np.sqrt(np.abs(spec) ** 2 + 1e-9)
    fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    return np.log(np.maximum(fb.astype(np.float64) @ mag.T, 1e-5))


def test_mel_matches_independent_numpy_reference():
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(4000)).astype(np.float32)
    mel = MelSpectrogram(DEMO_AUDIO)(torch.from_numpy(x)[None])
    ref = reference_log_mel(x, DEMO_AUDIO)
    assert mel.shape == (1, 64, 4000 // 128) == (1,) + ref.shape
    np.testing.assert_allclose(mel[0].numpy(), ref, atol=2e-4)


def test_mel_shapes_floor_and_tone_position():
    m = MelSpectrogram(DEMO_AUDIO)
    silence = torch.zeros(2, 1, 4096)
    out = m(silence)
    assert out.shape == (2, 64, 32) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, math.log(LOG_FLOOR)))
    assert m(torch.zeros(3, 1000)).shape == (3, 64, 1000 // 128)
    x = torch.from_numpy(tone(1000.0, 16000, 0.5))[None]
    band = m(x)[0].mean(dim=1).argmax().item()
    centres = mel_to_hz(np.linspace(0, hz_to_mel(8000.0), 66))[1:-1]
    assert abs(centres[band] - 1000.0) < 150.0
    assert torch.isfinite(m(torch.randn(1, 2048) * 10)).all()


def test_mel_runs_in_float32_under_autocast_and_keeps_buffers_out_of_state_dict():
    m = MelSpectrogram(DEMO_AUDIO)
    x = torch.randn(2, 1, 2048) * 0.1
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = m(x.to(torch.bfloat16))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), m(x.to(torch.bfloat16).float()).numpy(), atol=1e-5)
    assert dict(m.state_dict()) == {}
    with pytest.raises(ValueError, match="B, 1, T"):
        m(torch.zeros(2, 2, 512))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mel_on_cuda_under_bf16_autocast_matches_cpu():
    x = torch.randn(2, 1, 4096) * 0.2
    cpu = MelSpectrogram(DEMO_AUDIO)(x)
    m = MelSpectrogram(DEMO_AUDIO).cuda()
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        out = m(x.cuda())
    assert out.dtype == torch.float32 and out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), cpu, atol=1e-3, rtol=1e-4)


def test_mel_survives_a_parent_module_cast_to_half():
    m = MelSpectrogram(DEMO_AUDIO)
    x = torch.randn(1, 2048) * 0.2
    ref = m(x)
    out = m.half()(x.half())
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.05


def test_write_wav_follows_the_umask_and_leaves_no_temp(tmp_path):
    import os

    from trainer.audio import write_wav

    old = os.umask(0o022)
    try:
        write_wav(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    finally:
        os.umask(old)
    assert (tmp_path / "a.wav").stat().st_mode & 0o777 == 0o644  # mkstemp made it 0600
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]
