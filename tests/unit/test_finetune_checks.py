"""Fine-tuning's audio checks (trainer/corpus/finetune.py): the source's audio settings
against the new config's and the corpus's; n_mels and hop refused, the rest warned, each
naming the key and both values."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.hifigan_factory import tiny_cfg, write_reference
from trainer.cli import main
from trainer.config.build import replace, to_dict
from trainer.corpus.finetune import compare_audio, corpus_rate
from trainer.train import resume
from trainer.train.errors import TrainerError

V1 = {
    "sample_rate": 22050,
    "n_fft": 1024,
    "win_length": 1024,
    "hop_length": 256,
    "n_mels": 80,
    "fmin": 0.0,
    "fmax": 8000.0,
}


def test_same_settings_pass_silently() -> None:
    check = compare_audio(V1, dict(V1), corpus_rate=22050)
    assert check.refusals == [] and check.warnings == []


@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        ("n_mels", 128, "audio.n_mels: 80 in the source checkpoint, 128 in this config"),
        ("hop_length", 300, "audio.hop_length: 256 in the source checkpoint, 300 in this config"),
    ],
)
def test_mel_bands_and_hop_are_refused(key: str, value: int, line: str) -> None:
    check = compare_audio(V1, {**V1, key: value})
    assert len(check.refusals) == 1 and check.refusals[0].startswith(line)
    assert check.warnings == []


@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        ("fmax", None, "audio.fmax: 8000 in the source checkpoint, 11025 in this config"),
        ("sample_rate", 24000, "audio.sample_rate: 22050 in the source checkpoint, 24000"),
        ("fmin", 50.0, "audio.fmin: 0 in the source checkpoint, 50 in this config"),
        ("win_length", 800, "audio.win_length: 1024 in the source checkpoint, 800"),
        ("n_fft", 2048, "audio.n_fft: 1024 in the source checkpoint, 2048"),
    ],
)
def test_range_rate_and_stft_differences_warn(key: str, value, line: str) -> None:
    check = compare_audio(V1, {**V1, key: value})
    assert check.refusals == [] and len(check.warnings) == 1
    assert check.warnings[0].startswith(line)


def test_a_corpus_below_the_source_rate_warns(demo_corpus: Path) -> None:
    cfg = replace(tiny_cfg(), data={"corpus_dir": str(demo_corpus)})
    assert corpus_rate(cfg) == 16000
    check = compare_audio(V1, to_dict(cfg)["audio"], corpus_rate(cfg))
    assert check.refusals == []
    assert check.warnings == [
        "the corpus's WAVs are at 16000 Hz, below the source checkpoint's audio.sample_rate "
        "22050: resampled up, they hold nothing above 8000 Hz"
    ]


def _imported(tmp_path: Path) -> str:
    ref = write_reference(tmp_path / "ref", tiny_cfg())  # small discriminators: a small file
    args = ["import", "--format", "hifigan", "--config", str(ref.config)]
    assert main([*args, "--run-dir", str(tmp_path / "src"), str(ref.g), str(ref.do)]) == 0
    return str(tmp_path / "src" / "checkpoints" / "ckpt_00000000.pt")


def test_init_from_refuses_other_mel_bands_naming_both(tmp_path: Path, demo_corpus: Path) -> None:
    src = _imported(tmp_path)
    cfg = replace(tiny_cfg(), audio={"n_mels": 64}, data={"corpus_dir": str(demo_corpus)})
    with pytest.raises(TrainerError) as e:
        resume.choose_init(cfg, src, generator_only=True, optimizers=False)
    assert "audio.n_mels: 80 in the source checkpoint, 64 in this config" in str(e.value)
    assert "\n" not in str(e.value)


def test_init_from_warns_for_the_mel_range_and_goes_on(
    tmp_path: Path, demo_corpus: Path, caplog
) -> None:
    src = _imported(tmp_path)
    cfg = replace(tiny_cfg(), audio={"fmax": 11025.0}, data={"corpus_dir": str(demo_corpus)})
    with caplog.at_level(logging.WARNING, logger="nal-train"):
        info, _ = resume.choose_init(cfg, src, generator_only=True, optimizers=False)
    text = caplog.text
    assert "audio.fmax: 8000 in the source checkpoint, 11025 in this config" in text
    assert "16000 Hz, below the source checkpoint's audio.sample_rate 22050" in text
    assert info.step == 0
