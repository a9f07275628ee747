"""``nal-train import --format hifigan``: reference-format files (tests/hifigan_factory.py,
written by torch's own old weight-norm API) become a verified run; every mismatch is one
line naming the file and the key, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.ckpt_factory import RunsCode
from tests.hifigan_factory import tiny_cfg, write_reference
from trainer.checkpointing.loadtest import load_checkpoint
from trainer.cli import main
from trainer.models import build_models
from trainer.rundir.manifest import read_manifest
from trainer.tools import inference


def _import(tmp_path: Path, files, run: str = "run") -> int:
    args = ["import", "--format", "hifigan", "--config", str(files.config)]
    args += ["--run-dir", str(tmp_path / run), str(files.g)]
    return main(args + ([str(files.do)] if files.do else []))


def _by_value(params: list[torch.Tensor], target: torch.Tensor) -> int:
    hits = [i for i, p in enumerate(params) if p.shape == target.shape and torch.equal(p, target)]
    assert len(hits) == 1
    return hits[0]


def test_import_with_discriminators_is_bit_exact(tmp_path: Path, capsys) -> None:
    cfg = tiny_cfg()
    ref = write_reference(tmp_path / "ref", cfg, steps=1200, epoch=3)
    assert _import(tmp_path, ref) == 0
    out, err = capsys.readouterr()
    assert "fmax_for_loss" in err and "num_gpus" in err and "dist_config" in err  # named
    run = tmp_path / "run"
    state = load_checkpoint(run / "checkpoints" / "ckpt_00001200.pt")
    assert state["step"] == 1200 and state["epoch"] == 3
    man = read_manifest(run / "checkpoints" / "ckpt_00001200.json")
    assert man.imported["format"] == "hifigan" and not man.generator_only
    roles = {s["role"]: s for s in man.imported["sources"]}
    assert set(roles) == {"config", "generator", "discriminators"}
    import hashlib

    assert roles["generator"]["sha256"] == hashlib.sha256(ref.g.read_bytes()).hexdigest()
    # Every reference tensor is in our checkpoint bit for bit (weight_g -> original0, ...).
    ours = list(state["generator"].values())
    for t in ref.generator.state_dict().values():
        _by_value(ours, t)
    d_ours = list(state["discriminators"].values())
    for module in (ref.mpd, ref.msd):
        for t in module.state_dict().values():
            _by_value(d_ours, t)
    # Optimizer moments: the reference's parameter i (optim_d: msd's, then mpd's) is ours j,
    # found by value (not by the importer's name mapping).
    gm, dm = build_models(cfg)
    gm.load_state_dict(state["generator"])
    dm.load_state_dict(state["discriminators"])
    ref_d_params = list(ref.msd.parameters()) + list(ref.mpd.parameters())
    for ref_params, our_params, key_ref, key_ours in (
        (list(ref.generator.parameters()), list(gm.parameters()), "optim_g", "opt_g"),
        (ref_d_params, list(dm.parameters()), "optim_d", "opt_d"),
    ):
        ref_opt = getattr(ref, key_ref)
        ours_opt = state[key_ours]
        assert len(ours_opt["state"]) == len(ref_params)
        for i, p in enumerate(ref_params):
            j = _by_value([q.detach() for q in our_params], p.detach())
            for m in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(ours_opt["state"][j][m], ref_opt["state"][i][m])
        group = ours_opt["param_groups"][0]
        assert group["lr"] == ref_opt["param_groups"][0]["lr"] < group["initial_lr"]
    assert state["sched_g"]["last_epoch"] == 3


def test_imported_generator_vocodes_as_the_source(tmp_path: Path) -> None:
    cfg = tiny_cfg()
    ref = write_reference(tmp_path / "ref", cfg)
    assert _import(tmp_path, ref) == 0
    loaded = inference.load_generator(tmp_path / "run", "latest")
    mel = torch.randn(1, 80, 40) - 4
    with torch.inference_mode():
        want = ref.generator(mel)
        got = loaded.generator(mel)
    assert (got - want).abs().max().item() < 1e-5


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _edit_g(ref, fn) -> None:
    state = torch.load(ref.g, weights_only=True)
    fn(state)
    torch.save(state, ref.g)


def _edit_do(ref, fn) -> None:
    state = torch.load(ref.do, weights_only=True)
    fn(state)
    torch.save(state, ref.do)


def _edit_config(ref, fn) -> None:
    data = json.loads(ref.config.read_text())
    fn(data)
    ref.config.write_text(json.dumps(data))


CASES = {
    "missing key": (
        lambda r: _edit_g(r, lambda s: s["generator"].pop("conv_post.weight_g")),
        ["g_00000000", "conv_post.weight_g", "lacks key", "[1, 1, 1]"],
    ),
    "extra key": (
        lambda r: _edit_g(r, lambda s: s["generator"].update({"extra.weight": torch.zeros(3)})),
        ["g_00000000", "extra.weight", "[3]"],
    ),
    "shape": (
        lambda r: _edit_config(r, lambda d: d.update(upsample_initial_channel=64)),
        ["g_00000000", "conv_pre.bias", "[32] in the file", "[64] for the config"],
    ),
    "bigvgan config": (
        lambda r: _edit_config(r, lambda d: d.update(activation="snakebeta", snake_logscale=True)),
        ["config.json", "'activation'", "snakebeta", "BigVGAN"],
    ),
    "missing config key": (
        lambda r: _edit_config(r, lambda d: d.pop("hop_size")),
        ["config.json", "hop_size"],
    ),
    "not json": (lambda r: r.config.write_bytes(b"\x00not json"), ["config.json", "not a JSON"]),
    "not a state dict": (
        lambda r: torch.save([torch.zeros(2)], r.g),
        ["g_00000000", "holds a list"],
    ),
    "bare state dict": (
        lambda r: torch.save(torch.load(r.g, weights_only=True)["generator"], r.g),
        ["g_00000000", "lacks the key 'generator'"],
    ),
    "pickled code": (
        lambda r: torch.save({"generator": RunsCode(r.g.parent / "marker")}, r.g),
        ["g_00000000", "pickled Python objects or code"],
    ),
    "do missing optim_d": (
        lambda r: _edit_do(r, lambda s: s.pop("optim_d")),
        ["do_00000000", "optim_d"],
    ),
    "do shape": (
        lambda r: _edit_do(
            r,
            lambda s: s["mpd"].update(
                {"discriminators.4.conv_post.weight_v": torch.zeros(1, 9, 3, 1)}
            ),
        ),
        [
            "do_00000000",
            "discriminators.4.conv_post.weight_v",
            "[1, 9, 3, 1] in the file",
            "[1, 16, 3, 1]",
        ],
    ),
    "do optimizer of another model": (
        lambda r: _edit_do(r, lambda s: s["optim_g"]["param_groups"][0]["params"].pop()),
        ["do_00000000", "optim_g", "parameters"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mismatch_is_one_line_and_writes_nothing(tmp_path: Path, capsys, case: str) -> None:
    ref = write_reference(tmp_path / "ref", tiny_cfg())
    spoil, fragments = CASES[case]
    spoil(ref)
    assert _import(tmp_path, ref) == 2
    line = _one_line(capsys)
    for f in fragments:
        assert f in line, line
    assert "nothing written" in line
    _nothing_written(tmp_path)
    assert not (ref.g.parent / "marker").exists()  # the pickled code never ran


def test_an_occupied_run_dir_is_refused(tmp_path: Path, capsys) -> None:
    ref = write_reference(tmp_path / "ref", tiny_cfg())
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert _import(tmp_path, ref) == 2
    assert "already holds files" in _one_line(capsys)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_a_generator_only_import_verifies_but_only_fine_tunes(tmp_path: Path, capsys) -> None:
    from trainer.checkpointing.store import VerifyCache
    from trainer.config.yamlfile import load
    from trainer.train import resume
    from trainer.train.errors import TrainerError

    ref = write_reference(tmp_path / "ref", tiny_cfg(), with_do=False)
    assert _import(tmp_path, ref) == 0
    capsys.readouterr()
    run = tmp_path / "run"
    assert main(["verify", "--run-dir", str(run)]) == 0
    assert "imported generator-only" in capsys.readouterr().out
    cfg = load(run / "config.yaml")
    with pytest.raises(
        TrainerError, match="imported without discriminators.*--init-from-generator-only"
    ):
        resume.choose_resume(cfg, run, "latest", VerifyCache())
    ckpt = str(run / "checkpoints" / "ckpt_00000000.pt")
    with pytest.raises(TrainerError, match="add --init-from-generator-only"):
        resume.choose_init(cfg, ckpt, generator_only=False, optimizers=False)
    info, state = resume.choose_init(cfg, ckpt, generator_only=True, optimizers=False)
    assert info.step == 0 and "generator" in state


def _same_tensors(a, b) -> None:
    """Nested dicts/lists of tensors and plain values, equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same_tensors(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same_tensors(x, y)
    else:
        assert a == b


def test_export_back_and_reimport_is_bit_identical(tmp_path: Path, capsys) -> None:
    cfg = tiny_cfg()
    ref = write_reference(tmp_path / "ref", cfg, steps=300, epoch=2)
    assert _import(tmp_path, ref) == 0
    out = tmp_path / "back" / "g_00000300"
    args = ["export", "--run-dir", str(tmp_path / "run"), "--format", "hifigan"]
    assert main([*args, "--out", str(out), "--with-discriminators"]) == 0
    do = out.with_name("do_00000300")
    assert (out.parent / "config.json").is_file()
    # The files are the reference's, key for key and bit for bit (weight norm kept).
    _same_tensors(torch.load(out, weights_only=True), torch.load(ref.g, weights_only=True))
    exported, original = torch.load(do, weights_only=True), torch.load(ref.do, weights_only=True)
    for key in ("mpd", "msd", "steps", "epoch"):
        _same_tensors(exported[key], original[key])
    for key in ("optim_g", "optim_d"):
        _same_tensors(exported[key]["state"], original[key]["state"])
        assert exported[key]["param_groups"][0]["lr"] == original[key]["param_groups"][0]["lr"]
    # Re-import: the same training state as the first import.
    files = type(ref)(out.parent / "config.json", out, do, None)
    assert _import(tmp_path, files, run="run2") == 0
    a = load_checkpoint(tmp_path / "run" / "checkpoints" / "ckpt_00000300.pt")
    b = load_checkpoint(tmp_path / "run2" / "checkpoints" / "ckpt_00000300.pt")
    for key in ("generator", "discriminators", "step", "epoch", "sched_g", "sched_d"):
        _same_tensors(a[key], b[key])
    for key in ("opt_g", "opt_d"):
        _same_tensors(a[key]["state"], b[key]["state"])


def test_export_never_overwrites_a_different_config_json(tmp_path: Path, capsys) -> None:
    ref = write_reference(tmp_path / "ref", tiny_cfg())
    assert _import(tmp_path, ref) == 0
    back = tmp_path / "back"
    back.mkdir()
    (back / "config.json").write_text(json.dumps({"num_mels": 100}))
    capsys.readouterr()
    args = ["export", "--run-dir", str(tmp_path / "run"), "--format", "hifigan"]
    assert main([*args, "--out", str(back / "g_00000000")]) == 2
    line = _one_line(capsys)
    assert "config.json exists and differs" in line and "num_mels" in line
    assert sorted(p.name for p in back.iterdir()) == ["config.json"]
    assert json.loads((back / "config.json").read_text()) == {"num_mels": 100}
    # The same config is fine (a second export into one directory).
    assert main([*args, "--out", str(tmp_path / "b2" / "g_00000000")]) == 0
    assert main([*args, "--out", str(tmp_path / "b2" / "g_00000001")]) == 0
