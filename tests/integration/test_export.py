"""``nal-train export``: TorchScript and ONNX files that match eager PyTorch, with a sidecar."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.integration.vocoder_runs import make_run
from trainer import cli
from trainer.config.build import to_dict
from trainer.events import schema as ev
from trainer.rundir.checkpoints import list_checkpoints
from trainer.tools import export as export_mod
from trainer.tools.inference import load_generator

HOP, N_MELS = 128, 64  # config/demo.yaml

ONNX_OK = all(importlib.util.find_spec(p) for p in export_mod.ONNX_PACKAGES)
FORMATS = [
    "torchscript",
    pytest.param("onnx", marks=pytest.mark.skipif(not ONNX_OK, reason="onnx extras not installed")),
]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    make_run(tmp_path / "run", seed=3)
    return tmp_path / "run"


def _export(run_dir: Path, fmt: str, out: Path, *extra: str) -> int:
    return cli.main(
        ["export", "--run-dir", str(run_dir), "--format", fmt, "--out", str(out), *extra]
    )


def _standalone(path: Path, fmt: str):
    """Run the file the way a user without this project would."""
    if fmt == "torchscript":
        m = torch.jit.load(str(path))
        return lambda mel: m(torch.from_numpy(mel)).detach().numpy()
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda mel: s.run(None, {"mel": mel})[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_matches_eager_at_two_lengths_and_writes_the_sidecar(
    run_dir: Path, tmp_path: Path, fmt: str, capsys
) -> None:
    out = tmp_path / ("g.pt" if fmt == "torchscript" else "g.onnx")
    assert _export(run_dir, fmt, out) == ev.EXIT_OK
    assert torch.is_grad_enabled()  # the command left this process's autograd alone
    printed = capsys.readouterr().out
    assert printed.count("max abs difference") == 2

    eager = load_generator(run_dir).generator
    run = _standalone(out, fmt)
    rng = np.random.default_rng(0)
    for batch, frames in ((1, 37), (2, 90)):  # one file, several batch sizes and lengths
        mel = rng.normal(-5, 2, (batch, N_MELS, frames)).astype(np.float32)
        got = run(mel)
        with torch.inference_mode():
            want = eager(torch.from_numpy(mel)).numpy()
        assert got.shape == (batch, 1, frames * HOP)
        assert np.max(np.abs(got - want)) <= export_mod.PARITY_TOLERANCE

    meta = json.loads(out.with_name(out.name + ".json").read_text())
    cfg_audio = to_dict(load_generator(run_dir).cfg)["audio"]
    assert meta["format"] == fmt and meta["file"] == out.name
    assert (meta["sample_rate"], meta["hop_length"], meta["n_mels"]) == (16000, HOP, N_MELS)
    for key in ("n_fft", "win_length", "hop_length", "n_mels", "fmin", "fmax", "sample_rate"):
        assert meta["mel"][key] == cfg_audio[key], key
    assert meta["mel"]["center"] is False and meta["mel"]["pad"]["mode"] == "reflect"
    ck = list_checkpoints(run_dir)[-1]
    assert meta["source"]["sha256"] == ck.sha256 and meta["source"]["step"] == 10
    assert meta["source"]["checkpoint"] == str(ck.path.resolve())
    assert meta["parity"]["max_abs_diff"] <= meta["parity"]["tolerance"] == 1e-4
    assert len(meta["parity"]["frames"]) == 2 and len(set(meta["parity"]["frames"])) == 2
    if fmt == "onnx":
        assert isinstance(meta["opset"], int) and meta["opset"] >= 17
        assert meta["input"]["shape"] == ["batch", N_MELS, "frames"]
    else:
        assert meta["opset"] is None


def test_a_parity_failure_leaves_no_file(run_dir: Path, tmp_path: Path, monkeypatch, capsys):
    real = export_mod.load_runner

    def off_by_a_bit(path, fmt):
        run = real(path, fmt)
        return lambda mel: run(mel) + 1e-3

    monkeypatch.setattr(export_mod, "load_runner", off_by_a_bit)
    out = tmp_path / "g.pt"
    assert _export(run_dir, "torchscript", out) == ev.EXIT_FAILED
    assert "parity check failed" in capsys.readouterr().err
    assert not out.exists() and not out.with_name("g.pt.json").exists()
    assert list(tmp_path.glob(".g.pt*")) == []  # no temp file left either


def test_a_missing_optional_dependency_is_a_clear_message(
    run_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    assert _export(run_dir, "onnx", tmp_path / "g.onnx") == ev.EXIT_USAGE
    err = capsys.readouterr().err
    assert "onnxruntime" in err and "naudiolab[export]" in err


def test_export_with_a_real_input_mel(run_dir: Path, tmp_path: Path) -> None:
    mel = tmp_path / "m.npy"
    np.save(mel, np.random.default_rng(1).normal(-5, 2, (N_MELS, 44)).astype(np.float32))
    out = tmp_path / "g.pt"
    assert _export(run_dir, "torchscript", out, "--input", str(mel)) == ev.EXIT_OK
    meta = json.loads(out.with_name("g.pt.json").read_text())
    assert meta["parity"]["frames"] == [44, 29]


def test_export_and_vocode_checkpoint_best_use_the_ledgers_best(tmp_path: Path, capsys) -> None:
    """--checkpoint best resolves through trainer.rundir (the ledger in the manifests)."""
    from trainer.rundir.manifest import BestRecord

    run = tmp_path / "run"
    for step, score, seed in ((10, 0.4, 1), (20, 0.9, 2)):  # the older one is the best
        note = BestRecord("mel_l1", 2, score, True)
        make_run(run, step=step, seed=seed, validation={"val": {"mel_l1": score}}, best=note)
    out = tmp_path / "g.pt"
    assert _export(run, "torchscript", out, "--checkpoint", "best") == ev.EXIT_OK
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert side["source"]["checkpoint"].endswith("ckpt_00000010.pt")
    assert side["source"]["sha256"] == list_checkpoints(run)[0].sha256
    assert load_generator(run, "best").step == 10 and load_generator(run).step == 20
    capsys.readouterr()
    wav = tmp_path / "x.npy"
    np.save(wav, np.full((N_MELS, 20), -5.0, np.float32))
    args = ["vocode", "--run-dir", str(run), "--checkpoint", "best", str(wav)]
    assert cli.main([*args, "--out", str(tmp_path / "o")]) == ev.EXIT_OK
    assert "ckpt_00000010.pt (step 10" in capsys.readouterr().out
