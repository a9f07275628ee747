"""Config loading: presets, unknown keys, ranges, types and cross-field checks name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config.build import from_dict, to_dict
from trainer.config.schema import BestConfig, Config, ConfigError
from trainer.config.yamlfile import dump, load

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["demo", "hifigan_v1", "hifigan_v2", "hifigan_v3", "hifigan_48k"])
def test_presets_load(name: str) -> None:
    cfg = load(ROOT / "config" / f"{name}.yaml")
    assert cfg.hop_product == cfg.audio.hop_length


def test_48k_preset_matches_the_design() -> None:
    c = load(ROOT / "config" / "hifigan_48k.yaml")
    assert (c.audio.sample_rate, c.audio.n_mels, c.audio.hop_length) == (48000, 128, 256)
    assert c.generator.upsample_rates == (8, 8, 2, 2)
    assert c.generator.resblock_kernel_sizes == (3, 7, 11)
    assert c.audio.n_fft == c.audio.win_length == 2048 and c.audio.fmax == 24000
    assert c.train.batch_size == 16 and c.optim.lr_g == c.optim.lr_d == 2e-4
    assert (c.loss.lambda_recon, c.loss.lambda_adv, c.loss.lambda_fm) == (45, 1, 2)
    assert c.train.max_steps == 500_000
    assert (c.log.log_every, c.log.val_every, c.checkpoint.every) == (100, 1000, 5000)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, needle",
    [
        ("train:\n  bach_size: 4\n", "unknown key 'train.bach_size' (did you mean 'batch_size'?)"),
        ("trian: {}\n", "unknown key 'trian' (did you mean 'train'?)"),
        ("train:\n  batch_size: 0\n", "'train.batch_size' = 0 is below the minimum 1"),
        ("train:\n  batch_size: four\n", "'train.batch_size' must be an integer"),
        ("optim:\n  lr_g: 2.0\n", "'optim.lr_g' = 2.0 is above the maximum 1.0"),
        ("loss:\n  recon: l2\n", "'loss.recon' must be one of mrstft, mel, pwg"),
        ("train:\n  device: tpu\n", "'train.device' must be one of auto, cpu, cuda"),
        (
            "generator:\n  upsample_rates: [8, 8, 2]\n  upsample_kernel_sizes: [16, 16, 4]\n",
            "product of 'generator.upsample_rates' (128) must equal 'audio.hop_length' (256)",
        ),
        (
            "audio:\n  fmax: 20000\n",
            "'audio.fmax' (20000.0) is above the Nyquist frequency (11025.0)",
        ),
        ("train: [1, 2]\n", "'train' must be a mapping"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("train:\n  batch_size: [\n", "not valid YAML (line"),
        ("data:\n  demo: yes please\n", "'data.demo' must be true or false"),
        (
            "generator:\n  resblock_dilation_sizes: [[1, -3]]\n  resblock_kernel_sizes: [3]\n",
            "'generator.resblock_dilation_sizes[0][1]' = -3 is below the minimum 1",
        ),
    ],
)
def test_bad_configs_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(p)
    assert str(p) in str(e.value)
    assert needle in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    # An empty file is a mistake (a truncated copy, the wrong path), not "all defaults".
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="config file is empty") as e:
        load(p)
    assert str(p) in str(e.value)


def test_an_explicit_empty_mapping_gives_defaults(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, "{}\n"))
    assert cfg == Config()
    assert cfg.loss.stft_resolutions == ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def test_dump_round_trips(tmp_path: Path) -> None:
    cfg = load(ROOT / "config" / "demo.yaml")
    again = load(_write(tmp_path, dump(cfg)))
    assert again == cfg


def test_scientific_notation_strings_are_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads 2e-4 (no dot) as a string; accept it as the number it obviously is.
    cfg = load(_write(tmp_path, "optim:\n  lr_g: 2e-4\n"))
    assert cfg.optim.lr_g == 2e-4


def test_the_best_checkpoint_ledger_and_validation_keys(tmp_path: Path) -> None:
    base = "name: x\n"
    cfg = load(_write(tmp_path, base))
    assert cfg.checkpoint.best is None  # off unless configured
    assert cfg.log.val_metrics == ("mel_l1", "mstft", "pesq", "stoi")
    assert cfg.log.composite.terms() == ("mel_l1", "mstft", "pesq")
    cfg = load(_write(tmp_path, base + "checkpoint: {best: {metric: composite, keep: 2}}\n"))
    assert cfg.checkpoint.best == BestConfig(metric="composite", keep=2, patience=10)
    assert from_dict(to_dict(cfg)) == cfg  # the resolved config round-trips
    cfg = load(_write(tmp_path, base + "data: {unseen_metadata: vctk/unseen.csv}\n"))
    assert cfg.data.unseen_metadata == "vctk/unseen.csv"
    for text, needle in [
        ("checkpoint: {best: {metric: stoi}}", "'checkpoint.best.metric' must be one of"),
        ("checkpoint: {best: {keep: 0}}", "'checkpoint.best.keep' = 0 is below"),
        ("checkpoint: {best: {patience: -1}}", "'checkpoint.best.patience' = -1"),
        ("checkpoint: {best: {metrc: pesq}}", "did you mean 'metric'"),
        ("checkpoint: {best: yes}", "'checkpoint.best' must be a mapping"),
        ("log: {val_metrics: [mel_l1, snr]}", "'log.val_metrics[1]' must be one of"),
        ("log: {val_metrics: [pesq, pesq]}", "lists a metric twice"),
        ("log: {composite: {pesq: -1}}", "'log.composite.pesq' = -1"),
        (
            "log: {val_metrics: [mel_l1]}\ncheckpoint: {best: {metric: pesq}}",
            "'checkpoint.best.metric' is pesq, which 'log.val_metrics' does not compute",
        ),
        (
            "log: {val_metrics: [mel_l1, pesq]}\ncheckpoint: {best: {metric: composite}}",
            "weighs mstft, but 'log.val_metrics' does not compute it",
        ),
        (
            "log: {composite: {mel_l1: 0, mstft: 0, pesq: 0}}\n"
            "checkpoint: {best: {metric: composite}}",
            "every 'log.composite' weight is 0",
        ),
        ("data: {unseen_metadata: [a]}", "'data.unseen_metadata' must be a string"),
    ]:
        with pytest.raises(ConfigError) as e:
            load(_write(tmp_path, base + text + "\n"))
        assert needle in str(e.value) and str(tmp_path / "c.yaml") in str(e.value), text
