"""``nal-train vocode``: WAV and .npy inputs, lengths, batching, refusals, copy-synthesis quality."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import demo_config_dict
from tests.integration.vocoder_runs import make_run
from trainer import cli
from trainer.audio import MelSpectrogram, read_wav
from trainer.config.build import from_dict
from trainer.data import Corpus
from trainer.events import schema as ev
from trainer.rundir.layout import checkpoint_paths
from trainer.tools.inference import MelExtractor, load_generator, vocode_batch
from trainer.train import loop
from trainer.train import metrics as M

SR, HOP, N_MELS = 16000, 128, 64  # config/demo.yaml


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    make_run(tmp_path / "run")
    return tmp_path / "run"


def _wav(path: Path, seconds: float, sr: int = SR, seed: int = 0) -> Path:
    from trainer.demo_corpus import synthesize_utterance

    wav, _ = synthesize_utterance(np.random.default_rng(seed), sr)
    sf.write(path, np.resize(wav, int(seconds * sr)), sr, subtype="PCM_16")
    return path


def _vocode(*args: str) -> int:
    return cli.main(["vocode", *args])


def test_vocoded_clip_has_the_expected_length_and_is_finite(run_dir, tmp_path, capsys) -> None:
    src = _wav(tmp_path / "clip.wav", 1.3)
    n_in = sf.info(src).frames
    out = tmp_path / "out"
    assert _vocode("--run-dir", str(run_dir), str(src), "--out", str(out)) == ev.EXIT_OK
    audio, sr = sf.read(out / "clip.wav", dtype="float32")
    assert sr == SR
    assert len(audio) == (n_in // HOP) * HOP
    assert np.all(np.isfinite(audio)) and np.any(audio != 0)
    text = capsys.readouterr().out
    assert "clip.wav" in text and "RTF" in text and "x real time" in text
    assert "total: 1 file(s)" in text and "ckpt_00000010.pt (step 10" in text
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "clip.wav").stat().st_mode & 0o777 == 0o666 & ~mask


def test_other_sample_rates_are_resampled_to_the_model_rate(run_dir, tmp_path) -> None:
    src = _wav(tmp_path / "hi.wav", 1.0, sr=22050)
    out = tmp_path / "out"
    assert _vocode("--run-dir", str(run_dir), str(src), "--out", str(out)) == ev.EXIT_OK
    audio, sr = sf.read(out / "hi.wav")
    assert sr == SR and len(audio) == (SR // HOP) * HOP


def test_npy_mels_in_both_layouts_and_directories(run_dir, tmp_path) -> None:
    mels = tmp_path / "mels"
    mels.mkdir()
    rng = np.random.default_rng(0)
    np.save(mels / "a.npy", rng.normal(-5, 2, (N_MELS, 50)).astype(np.float32))
    np.save(mels / "b.npy", rng.normal(-5, 2, (1, N_MELS, 31)).astype(np.float64))
    (mels / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    args = ["--run-dir", str(run_dir), str(mels), "--out", str(out), "--batch", "2"]
    assert _vocode(*args) == ev.EXIT_OK
    assert sf.info(out / "a.wav").frames == 50 * HOP
    assert sf.info(out / "b.wav").frames == 31 * HOP
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav"]


def test_npy_with_the_wrong_n_mels_is_refused_naming_the_file(run_dir, tmp_path, capsys) -> None:
    bad = tmp_path / "tacotron.npy"
    np.save(bad, np.zeros((80, 40), np.float32))
    code = _vocode("--run-dir", str(run_dir), str(bad), "--out", str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == ev.EXIT_USAGE
    assert str(bad) in err and "(80, 40)" in err and "n_mels is 64" in err
    assert not (tmp_path / "out").exists()


def test_batched_vocoding_matches_one_at_a_time(run_dir) -> None:
    loaded = load_generator(run_dir)
    rng = np.random.default_rng(1)
    import torch

    mels = [torch.from_numpy(rng.normal(-5, 2, (N_MELS, n)).astype(np.float32)) for n in (60, 41)]
    together = vocode_batch(loaded.generator, mels, HOP)
    alone = [vocode_batch(loaded.generator, [m], HOP)[0] for m in mels]
    assert [len(a) for a in together] == [60 * HOP, 41 * HOP]
    np.testing.assert_allclose(together[0], alone[0], atol=1e-6)
    # The padded item matches except near its end, where the padding is in view.
    keep = 30 * HOP
    np.testing.assert_allclose(together[1][:keep], alone[1][:keep], atol=1e-5)


def test_a_corrupt_checkpoint_is_refused(run_dir, tmp_path, capsys) -> None:
    pt, _ = checkpoint_paths(run_dir, 10)
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pt.write_bytes(bytes(data))
    src = _wav(tmp_path / "clip.wav", 0.5)
    code = _vocode("--run-dir", str(run_dir), str(src), "--out", str(tmp_path / "out"))
    assert code == ev.EXIT_NO_CHECKPOINT
    assert "sha256 mismatch" in capsys.readouterr().err


def test_checkpoint_paths_relative_to_the_run_or_alone(run_dir, tmp_path) -> None:
    src = _wav(tmp_path / "clip.wav", 0.5)
    rel = "checkpoints/ckpt_00000010.pt"
    args = ["--run-dir", str(run_dir), "--checkpoint", rel, str(src), "--out", str(tmp_path / "a")]
    assert _vocode(*args) == ev.EXIT_OK
    # An absolute checkpoint path inside a run names its run: --run-dir is not needed.
    args = ["--checkpoint", str(run_dir / rel), str(src), "--out", str(tmp_path / "b")]
    assert _vocode(*args) == ev.EXIT_OK
    assert (tmp_path / "a" / "clip.wav").exists() and (tmp_path / "b" / "clip.wav").exists()


def test_refusals_before_any_work(run_dir, tmp_path, capsys) -> None:
    src = _wav(tmp_path / "clip.wav", 0.5)
    base = ["--run-dir", str(run_dir)]
    assert _vocode(*base, str(src), "--out", str(tmp_path)) == ev.EXIT_USAGE
    assert "would overwrite this input" in capsys.readouterr().err
    assert _vocode(*base, str(tmp_path / "nope.wav"), "--out", "o") == ev.EXIT_USAGE
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "x.flac").write_bytes(b"")
    assert _vocode(*base, str(tmp_path / "x.flac"), "--out", "o") == ev.EXIT_USAGE
    assert "not a .wav or .npy" in capsys.readouterr().err
    assert _vocode(str(src), "--out", "o") == ev.EXIT_USAGE
    assert "--run-dir is required" in capsys.readouterr().err
    assert _vocode(*base, str(src), "--out", "o", "--batch", "0") == ev.EXIT_USAGE


@pytest.mark.slow
def test_a_briefly_trained_model_copies_speech_better_than_an_untrained_one(
    demo_corpus: Path, tmp_path: Path
) -> None:
    """Copy synthesis of held-out utterances: 100 demo steps beat the initial weights."""
    data = demo_config_dict(
        demo_corpus,
        log={"log_every": 50, "val_every": 100000, "val_samples": 0},
        checkpoint={"every": 100, "keep_last": 1, "milestone_every": 0},
    )
    cfg = from_dict(data, "test")
    trained, untrained = tmp_path / "trained", tmp_path / "untrained"
    assert loop.train(cfg, trained, "test.yaml", target_step=100) == ev.EXIT_OK
    make_run(untrained, data, seed=cfg.train.seed)
    corpus = Corpus.load(cfg)
    mel_fn, ext = MelSpectrogram(cfg.audio), MelExtractor(cfg)
    scores = {}
    for name, run in (("trained", trained), ("untrained", untrained)):
        g = load_generator(run).generator
        s = M.QualityScorer(SR, mel_fn, metrics=(M.MEL_L1, M.MSTFT))
        for utt in corpus.val:
            wav = read_wav(utt.wav_path, SR)
            out = vocode_batch(g, [ext.from_audio(wav)], HOP)[0]
            assert len(out) == (len(wav) // HOP) * HOP and np.all(np.isfinite(out))
            s.score(out, wav)
        scores[name] = s.result()
    assert scores["trained"][M.MEL_L1] < 0.7 * scores["untrained"][M.MEL_L1], scores
    assert scores["trained"][M.MSTFT] < scores["untrained"][M.MSTFT], scores


def test_help_lists_vocode_and_export_without_importing_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "from trainer import cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "print('vocode' in buf.getvalue() and 'export' in buf.getvalue(), 'torch' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["True", "False"], p.stdout + p.stderr


def test_bf16_inference_is_close_to_fp32_and_fp16_needs_cuda(run_dir, tmp_path, capsys) -> None:
    src = _wav(tmp_path / "clip.wav", 1.0)
    base = ["--run-dir", str(run_dir), str(src), "--device", "cpu"]
    assert _vocode(*base, "--out", str(tmp_path / "a")) == ev.EXIT_OK
    assert _vocode(*base, "--out", str(tmp_path / "b"), "--precision", "bf16") == ev.EXIT_OK
    a, _ = sf.read(tmp_path / "a" / "clip.wav")
    b, _ = sf.read(tmp_path / "b" / "clip.wav")
    assert len(a) == len(b) and np.max(np.abs(a - b)) < 0.01
    capsys.readouterr()
    assert _vocode(*base, "--out", str(tmp_path / "c"), "--precision", "fp16") == ev.EXIT_USAGE
    assert "fp16 needs CUDA" in capsys.readouterr().err


def test_onnx_engine_matches_eager_and_says_by_how_much(run_dir, tmp_path, capsys) -> None:
    """--engine onnx: ONNX Runtime on the exported generator; its outputs match eager fp32
    within the export's parity tolerance, and the measured difference is printed."""
    srcs = [_wav(tmp_path / "a.wav", 1.1, seed=1), _wav(tmp_path / "b.wav", 0.6, seed=2)]
    base = ["--run-dir", str(run_dir), *map(str, srcs), "--threads", "1", "--batch", "2"]
    assert _vocode(*base, "--out", str(tmp_path / "eager")) == ev.EXIT_OK
    capsys.readouterr()
    assert _vocode(*base, "--out", str(tmp_path / "onnx"), "--engine", "onnx") == ev.EXIT_OK
    text = capsys.readouterr().out
    assert "engine onnx: exported in" in text and "max abs difference from eager fp32" in text
    assert str(Path(os.environ["NAL_CACHE_DIR"]) / "onnx") in text  # kept for the next run
    assert "engine onnx" in text.splitlines()[-1]
    for name in ("a.wav", "b.wav"):
        want, _ = sf.read(tmp_path / "eager" / name, dtype="float32")
        got, _ = sf.read(tmp_path / "onnx" / name, dtype="float32")
        assert got.shape == want.shape and np.abs(got - want).max() <= 2 / 32768  # 16-bit WAV
    refused = _vocode(
        *base, "--out", str(tmp_path / "x"), "--engine", "onnx", "--precision", "bf16"
    )
    assert refused == ev.EXIT_USAGE and "fp32 on the CPU" in capsys.readouterr().err


def test_onnx_export_is_cached_per_checkpoint_and_a_damaged_entry_is_made_again(
    run_dir, tmp_path, capsys, monkeypatch
) -> None:
    """The second --engine onnx run reuses the export from the user cache (same output); a
    truncated cache file is exported again, never used; another checkpoint gets its own."""
    monkeypatch.setenv("NAL_CACHE_DIR", str(tmp_path / "cache"))
    src = _wav(tmp_path / "a.wav", 0.8, seed=3)
    base = ["--run-dir", str(run_dir), str(src), "--threads", "1", "--engine", "onnx"]
    assert _vocode(*base, "--out", str(tmp_path / "1")) == ev.EXIT_OK
    assert "engine onnx: exported in" in capsys.readouterr().out
    (cached,) = (tmp_path / "cache" / "onnx").glob("generator-*.onnx")
    assert _vocode(*base, "--out", str(tmp_path / "2")) == ev.EXIT_OK
    assert f"engine onnx: cached {cached}" in capsys.readouterr().out
    first, _ = sf.read(tmp_path / "1" / "a.wav", dtype="float32")
    second, _ = sf.read(tmp_path / "2" / "a.wav", dtype="float32")
    assert np.array_equal(first, second)

    cached.write_bytes(cached.read_bytes()[:1000])  # a damaged entry
    assert _vocode(*base, "--out", str(tmp_path / "3")) == ev.EXIT_OK
    assert "engine onnx: exported in" in capsys.readouterr().out
    third, _ = sf.read(tmp_path / "3" / "a.wav", dtype="float32")
    assert np.array_equal(first, third)

    make_run(run_dir, step=20, seed=1)  # a later checkpoint, other weights: its own entry
    assert _vocode(*base, "--out", str(tmp_path / "4")) == ev.EXIT_OK
    assert "engine onnx: exported in" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "onnx").glob("generator-*.onnx"))) == 2


def test_a_long_file_is_vocoded_in_windows_with_the_same_output(run_dir, tmp_path) -> None:
    """--chunk: a file longer than the window is vocoded in overlapping windows; the audio is
    that of vocoding it whole (to float rounding), at every window size and batch."""
    src = _wav(tmp_path / "long.wav", 3.0, seed=4)
    base = ["--run-dir", str(run_dir), str(src), "--threads", "1"]
    assert _vocode(*base, "--out", str(tmp_path / "whole"), "--chunk", "0") == ev.EXIT_OK
    want, _ = sf.read(tmp_path / "whole" / "long.wav", dtype="float32")
    for chunk, batch in (("40", "1"), ("57", "3")):
        out = tmp_path / f"c{chunk}"
        assert _vocode(*base, "--out", str(out), "--chunk", chunk, "--batch", batch) == ev.EXIT_OK
        got, _ = sf.read(out / "long.wav", dtype="float32")
        assert got.shape == want.shape and np.abs(got - want).max() <= 1 / 32768
