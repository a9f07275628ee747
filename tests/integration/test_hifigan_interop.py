"""The reference HiFi-GAN's published configs (V1, V2, V3 and our 48 kHz one) imported from
reference-format files, verified and vocoded; an imported run resumed with its optimizer
state, and a generator-only import fine-tuned (real ``nal-train`` processes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tests.conftest import ROOT, nal_train_cmd, read_events
from tests.hifigan_factory import tiny_cfg, write_reference
from trainer.checkpointing.loadtest import load_checkpoint
from trainer.cli import main
from trainer.config.yamlfile import load
from trainer.tools import inference


def _import(files, run: Path) -> int:
    args = ["import", "--format", "hifigan", "--config", str(files.config), "--run-dir", str(run)]
    return main(args + [str(files.g)] + ([str(files.do)] if files.do else []))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hifigan_v1", "hifigan_v2", "hifigan_v3", "hifigan_48k"])
def test_published_configs_import_verify_and_vocode_as_the_source(
    tmp_path: Path, name: str, capsys
) -> None:
    cfg = load(ROOT / "config" / f"{name}.yaml")
    ref = write_reference(tmp_path / "ref", cfg, with_do=False)
    run = tmp_path / "run"
    assert _import(ref, run) == 0
    assert main(["verify", "--run-dir", str(run)]) == 0
    n_mels = cfg.audio.n_mels
    mel = (torch.randn(n_mels, 32, generator=torch.Generator().manual_seed(1)) - 5).numpy()
    np.save(tmp_path / "utt.npy", mel.astype(np.float32))
    out = tmp_path / "out"
    assert (
        main(["vocode", "--run-dir", str(run), str(tmp_path / "utt.npy"), "--out", str(out)]) == 0
    )
    with torch.inference_mode():
        want = ref.generator(torch.from_numpy(mel)[None])[0, 0]
        got = inference.load_generator(run, "latest").generator(torch.from_numpy(mel)[None])[0, 0]
    assert (got - want).abs().max().item() < 1e-5  # fp32, the command's own generator
    audio, sr = sf.read(out / "utt.wav", dtype="float32")
    assert sr == cfg.audio.sample_rate and audio.shape == want.shape
    # The WAV is 16-bit: one quantisation step from the source's output at most.
    assert np.abs(audio - want.numpy()).max() <= 1 / 32767 + 1e-5


def _tiny_run_config(path: Path, corpus: Path, **sections: dict) -> None:
    """Point a config (an imported run's config.yaml) at the test corpus, tiny schedule."""
    data = yaml.safe_load(path.read_text())
    for name, values in sections.items():
        data[name].update(values)
    data["data"].update(corpus_dir=str(corpus), val_size=2, num_workers=0)
    data["log"].update(log_every=1, val_every=1000, val_samples=0, val_metrics=["mel_l1"])
    data["checkpoint"].update(every=1, keep_last=3, best=None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*nal_train_cmd(), "train", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_resume_of_an_imported_run_continues_at_steps_plus_one(
    tmp_path: Path, demo_corpus: Path
) -> None:
    ref = write_reference(tmp_path / "ref", tiny_cfg(), steps=40, epoch=1)
    run = tmp_path / "run"
    assert _import(ref, run) == 0
    _tiny_run_config(run / "config.yaml", demo_corpus)
    r = _train("--run-dir", str(run), "--resume", "latest", "--target-step", "41")
    assert r.returncode == 0, r.stderr[-2000:]
    steps = [e["step"] for e in read_events(run) if e["event"] == "step"]
    assert steps == [41]
    state = load_checkpoint(run / "checkpoints" / "ckpt_00000041.pt")
    imported = load_checkpoint(run / "checkpoints" / "ckpt_00000040.pt")
    for key, ref_key in (("opt_g", "optim_g"), ("opt_d", "optim_d")):
        ref_steps = {float(s["step"]) for s in getattr(ref, ref_key)["state"].values()}
        assert ref_steps == {2.0}  # the reference optimizers took two steps
        # The imported moments were the ones stepped: their counts went on from 2 to 3.
        assert {float(s["step"]) for s in state[key]["state"].values()} == {3.0}
        b1, b2 = imported[key]["param_groups"][0]["betas"]
        old, new = imported[key]["state"][0], state[key]["state"][0]
        # The gradient the step added, read off the first moment; the second moment must
        # then be the imported one carried on with that same gradient (fresh moments fail).
        grad = (new["exp_avg"] - b1 * old["exp_avg"]) / (1 - b1)
        carried = b2 * old["exp_avg_sq"] + (1 - b2) * grad * grad
        assert torch.allclose(new["exp_avg_sq"], carried, rtol=1e-3, atol=1e-10)
        assert not torch.allclose(new["exp_avg_sq"], (1 - b2) * grad * grad, rtol=1e-3)
        assert state[key]["param_groups"][0]["lr"] == imported[key]["param_groups"][0]["lr"]
    assert state["epoch"] == 1


@pytest.mark.slow
def test_a_generator_only_import_fine_tunes_with_fresh_discriminators(
    tmp_path: Path, demo_corpus: Path
) -> None:
    ref = write_reference(tmp_path / "ref", tiny_cfg(), with_do=False)
    run = tmp_path / "src"
    assert _import(ref, run) == 0
    ft_yaml = tmp_path / "ft.yaml"
    ft_yaml.write_text((run / "config.yaml").read_text())
    _tiny_run_config(
        ft_yaml,
        demo_corpus,
        discriminator={
            "mpd_channels": [4, 8, 16, 16, 16],
            "msd_channels": [8, 8, 16, 16, 16, 16, 16],
        },
    )
    ft = tmp_path / "ft"
    ckpt = run / "checkpoints" / "ckpt_00000000.pt"
    r = _train(
        "--config",
        str(tmp_path / "ft.yaml"),
        "--run-dir",
        str(ft),
        "--init-from",
        str(ckpt),
        "--target-step",
        "2",
    )
    # Without --init-from-generator-only the source's (untrained) discriminators are refused.
    assert r.returncode == 5, r.stderr[-2000:]
    r = _train(
        "--config",
        str(tmp_path / "ft.yaml"),
        "--run-dir",
        str(ft),
        "--init-from",
        str(ckpt),
        "--init-from-generator-only",
        "--target-step",
        "2",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    events = read_events(ft)
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2]
    assert all(np.isfinite(e["g"]) for e in steps)
    start = next(e for e in events if e["event"] == "run_start")
    assert start["init_from"] == str(ckpt) and start["init_generator_only"] is True
