"""Fine-tuning on an acoustic model's mels (``data.mels_dir``), as the real trainer checks them:
every mel's n_mels, and frames x hop within one hop of its audio, the file named (exit 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from tests.conftest import ROOT, demo_config_dict, nal_train_cmd, read_events, write_config
from trainer.corpus.report import RULE_MELS
from trainer.events import schema as ev


def _mels(corpus: Path, out: Path, hop: int = 128, n_mels: int = 64) -> list[Path]:
    """Mels of the right shape for every clip: a centred STFT's len // hop + 1 frames."""
    import soundfile as sf

    out.mkdir()
    paths = []
    for wav in sorted((corpus / "wavs").glob("*.wav")):
        frames = sf.info(wav).frames // hop + 1
        p = out / f"{wav.stem}.npy"
        np.save(p, np.full((n_mels, frames), -5.0, np.float32))
        paths.append(p)
    return paths


def _train(cfg: Path, run: Path) -> subprocess.CompletedProcess[str]:
    cmd = nal_train_cmd() + ["train", "--config", str(cfg), "--run-dir", str(run)]
    return subprocess.run(
        cmd + ["--target-step", "1"], capture_output=True, text=True, timeout=600, cwd=ROOT
    )


def test_a_mel_longer_than_its_audio_by_more_than_a_hop_is_named(
    demo_corpus: Path, tmp_path: Path
) -> None:
    mels = _mels(demo_corpus, tmp_path / "mels")
    bad = mels[5]
    m = np.load(bad)
    # One frame more than a centred STFT gives: len // hop + 2 frames, which the old rule
    # (within 2 frames of len // hop) let through; frames x hop is now over a hop too long.
    np.save(bad, np.concatenate([m, m[:, :1]], axis=1))
    data = {"mels_dir": str(tmp_path / "mels"), "demo": False}
    cfg = write_config(
        tmp_path / "c.yaml",
        demo_config_dict(demo_corpus, data=data, log={"val_every": 1000}),
    )
    run = tmp_path / "run"
    out = _train(cfg, run)
    assert out.returncode == ev.EXIT_USAGE, out.stderr[-2000:]
    line = next(ln for ln in out.stderr.splitlines() if f"[{RULE_MELS}]" in ln)
    assert str(bad) in line and "within one hop (128)" in line
    assert "Traceback" not in out.stderr
    assert not [r for r in read_events(run) if r["event"] == "step"]
