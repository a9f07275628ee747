"""Checkpoints on real files: atomic save under failures, verify, fallback, retention, RNG."""

from __future__ import annotations

import io
import os
import pathlib
import random
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nal_tui.core.watch.store import STATE_FILE
from tests.ckpt_factory import small_state
from trainer.checkpointing import store as ckpt_mod
from trainer.checkpointing.loadtest import load_checkpoint
from trainer.checkpointing.rng import capture_rng_state, restore_rng_state
from trainer.checkpointing.store import clean_leftovers, save_checkpoint
from trainer.rundir.checkpoints import list_checkpoints, verify_checkpoint
from trainer.rundir.layout import (
    PID_FILE,
    CheckpointError,
    NoValidCheckpoint,
    checkpoint_paths,
    temp_path_for,
)
from trainer.rundir.manifest import read_manifest
from trainer.rundir.resolve import find_resume_checkpoint
from trainer.rundir.retention import apply_retention


def flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def names(run_dir: Path) -> list[str]:
    return sorted(os.listdir(run_dir / "checkpoints"))


# ---------------------------------------------------------------------------- save


def test_save_writes_pt_then_manifest_with_hash(tmp_path: Path) -> None:
    info = save_checkpoint(
        tmp_path, 100, 3, small_state(100), milestone=True, config_sha256="ab" * 32
    )
    pt, mp = checkpoint_paths(tmp_path, 100)
    assert (info.path, info.manifest_path) == (pt, mp)
    assert info.complete and info.milestone and info.epoch == 3
    assert names(tmp_path) == ["ckpt_00000100.json", "ckpt_00000100.pt"]
    man = read_manifest(mp)
    assert man.step == 100 and man.config_sha256 == "ab" * 32
    assert man.files[0].bytes == pt.stat().st_size
    assert verify_checkpoint(info) == (True, "ok")  # hash taken while writing matches the disk
    assert torch.equal(load_checkpoint(pt)["w"], small_state(100)["w"])


def test_resave_same_step_replaces_cleanly(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 100, 0, small_state(1))
    info = save_checkpoint(tmp_path, 100, 0, small_state(2))
    assert verify_checkpoint(info) == (True, "ok")
    assert load_checkpoint(info.path)["step"] == 2
    assert names(tmp_path) == ["ckpt_00000100.json", "ckpt_00000100.pt"]


def test_failed_torch_save_keeps_previous_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    save_checkpoint(tmp_path, 100, 0, small_state(100))

    def half_then_fail(obj, f, *a, **k):
        f.write(b"PK\x03\x04" + b"\0" * 4096)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_path, 200, 0, small_state(200))
    assert names(tmp_path) == ["ckpt_00000100.json", "ckpt_00000100.pt"]
    info, skipped = find_resume_checkpoint(tmp_path)
    assert info.step == 100 and skipped == []


def test_failed_replace_keeps_previous(tmp_path: Path, monkeypatch) -> None:
    save_checkpoint(tmp_path, 100, 0, small_state(100))

    def boom(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ckpt_mod.os, "replace", boom)
    with pytest.raises(OSError, match="Input/output"):
        save_checkpoint(tmp_path, 200, 0, small_state(200))
    monkeypatch.undo()
    assert names(tmp_path) == ["ckpt_00000100.json", "ckpt_00000100.pt"]
    assert load_checkpoint(checkpoint_paths(tmp_path, 100)[0])["step"] == 100


def test_signal_during_save_is_delivered_after_manifest(tmp_path: Path, monkeypatch) -> None:
    seen: list[bool] = []
    _, mp = checkpoint_paths(tmp_path, 100)
    real_save = torch.save

    def save_and_signal(obj, f, *a, **k):
        # Thread-directed, so it stays pending on the blocked main thread.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(ckpt_mod.torch, "save", save_and_signal)
    old = signal.signal(signal.SIGTERM, lambda *_: seen.append(mp.exists()))
    try:
        info = save_checkpoint(tmp_path, 100, 0, small_state(100))
    finally:
        signal.signal(signal.SIGTERM, old)
    assert seen == [True]
    assert verify_checkpoint(info) == (True, "ok")


# ------------------------------------------------------------------------ load


def test_load_realistic_training_state_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.utils.parametrizations.weight_norm(nn.Conv1d(8, 16, 7, padding=3)),
        nn.LeakyReLU(0.1),
        nn.ConvTranspose1d(16, 4, 4, stride=2, padding=1),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.999)
    scaler = torch.amp.GradScaler("cpu")
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(2, 8, 32)).pow(2).mean().backward()
        opt.step()
        sched.step()
    state = {
        "generator": model.state_dict(),
        "optim_g": opt.state_dict(),
        "sched_g": sched.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "sampler": {"epoch": 4, "position": 17, "seed": 1234},
        "step": 3,
        "epoch": 4,
        "config_yaml": "name: demo\n",
    }
    info = save_checkpoint(tmp_path, 3, 4, state)
    loaded = load_checkpoint(info.path)

    model2 = nn.Sequential(
        nn.utils.parametrizations.weight_norm(nn.Conv1d(8, 16, 7, padding=3)),
        nn.LeakyReLU(0.1),
        nn.ConvTranspose1d(16, 4, 4, stride=2, padding=1),
    )
    model2.load_state_dict(loaded["generator"])
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)
    opt2.load_state_dict(loaded["optim_g"])
    sched2 = torch.optim.lr_scheduler.ExponentialLR(opt2, gamma=0.5)
    sched2.load_state_dict(loaded["sched_g"])
    scaler2 = torch.amp.GradScaler("cpu")
    scaler2.load_state_dict(loaded["scaler"])
    x = torch.randn(1, 8, 32)
    assert torch.equal(model(x), model2(x))
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    assert sched2.last_epoch == 3
    assert scaler2.get_scale() == scaler.get_scale()
    assert loaded["sampler"] == {"epoch": 4, "position": 17, "seed": 1234}


def test_load_rejects_corrupt_file_naming_it(tmp_path: Path) -> None:
    info = save_checkpoint(tmp_path, 100, 0, small_state(100))
    flip_byte(info.path)
    with pytest.raises(CheckpointError, match=r"ckpt_00000100\.pt.*sha256 mismatch"):
        load_checkpoint(info.path)


def test_load_rejects_truncated_file(tmp_path: Path) -> None:
    info = save_checkpoint(tmp_path, 100, 0, small_state(100))
    with open(info.path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(CheckpointError, match=r"ckpt_00000100\.pt.*truncated"):
        load_checkpoint(info.path)


def test_load_without_manifest_is_refused(tmp_path: Path) -> None:
    info = save_checkpoint(tmp_path, 100, 0, small_state(100))
    info.manifest_path.unlink()
    with pytest.raises(CheckpointError, match="no manifest"):
        load_checkpoint(info.path)


class NotAllowed:
    pass


def test_pickled_object_is_refused_by_weights_only(tmp_path: Path) -> None:
    info = save_checkpoint(tmp_path, 100, 0, {"obj": NotAllowed()})
    assert verify_checkpoint(info) == (True, "ok")
    with pytest.raises(CheckpointError, match=r"ckpt_00000100\.pt.*weights_only=True"):
        load_checkpoint(info.path)


# ---------------------------------------------------------------------- resume choice


def test_latest_skips_corrupt_and_incomplete_with_reasons(tmp_path: Path) -> None:
    for s in (100, 200, 300, 400):
        save_checkpoint(tmp_path, s, 0, small_state(s))
    flip_byte(checkpoint_paths(tmp_path, 400)[0])
    checkpoint_paths(tmp_path, 300)[1].unlink()
    with open(checkpoint_paths(tmp_path, 200)[0], "r+b") as f:
        f.truncate(50)
    info, skipped = find_resume_checkpoint(tmp_path)
    assert info.step == 100
    reasons = {s.step: r for s, r in skipped}
    assert list(reasons) == [400, 300, 200]
    assert "sha256 mismatch" in reasons[400]
    assert "no manifest" in reasons[300]
    assert "truncated" in reasons[200]
    assert load_checkpoint(info.path)["step"] == 100


def test_no_valid_checkpoint_raises(tmp_path: Path) -> None:
    with pytest.raises(NoValidCheckpoint, match="no checkpoints"):
        find_resume_checkpoint(tmp_path)
    info = save_checkpoint(tmp_path, 100, 0, small_state(100))
    flip_byte(info.path)
    with pytest.raises(NoValidCheckpoint, match="step 100: .*sha256 mismatch"):
        find_resume_checkpoint(tmp_path)


def test_explicit_path_must_verify(tmp_path: Path) -> None:
    a = save_checkpoint(tmp_path, 100, 0, small_state(100))
    b = save_checkpoint(tmp_path, 200, 0, small_state(200))
    info, skipped = find_resume_checkpoint(tmp_path, str(a.path))
    assert info.step == 100 and skipped == []
    assert find_resume_checkpoint(tmp_path, a.manifest_path)[0].step == 100
    flip_byte(b.path)
    with pytest.raises(NoValidCheckpoint, match=r"ckpt_00000200\.pt.*sha256 mismatch"):
        find_resume_checkpoint(tmp_path, b.path)
    with pytest.raises(NoValidCheckpoint, match="does not exist"):
        find_resume_checkpoint(tmp_path, checkpoint_paths(tmp_path, 999)[0])
    with pytest.raises(NoValidCheckpoint, match="not a checkpoint name"):
        find_resume_checkpoint(tmp_path, tmp_path / "model.bin")


# -------------------------------------------------------------------- retention, cleanup


def test_retention_keeps_last_k_and_milestones(tmp_path: Path, monkeypatch) -> None:
    for s in range(100, 900, 100):
        save_checkpoint(tmp_path, s, 0, small_state(s), milestone=(s == 400))
    # An incomplete newer one neither counts toward K nor gets deleted here.
    checkpoint_paths(tmp_path, 900)[0].write_bytes(b"partial")
    order: list[tuple[str, str]] = []
    real_unlink, real_rename = pathlib.Path.unlink, os.rename

    def recording_unlink(self, missing_ok=False):
        order.append(("unlink", self.name))
        real_unlink(self, missing_ok=missing_ok)

    def recording_rename(src, dst):
        order.append(("rename", Path(src).name))
        real_rename(src, dst)

    monkeypatch.setattr(pathlib.Path, "unlink", recording_unlink)
    monkeypatch.setattr(ckpt_mod.os, "rename", recording_rename)
    deleted = apply_retention(tmp_path, keep_last=3, protect_steps=(100,))
    monkeypatch.undo()
    assert [d.step for d in deleted] == [200, 300, 500]
    left = {i.step: i.complete for i in list_checkpoints(tmp_path)}
    assert left == {100: True, 400: True, 600: True, 700: True, 800: True, 900: False}
    for s in (200, 300, 500):
        pt, mp = checkpoint_paths(tmp_path, s)
        # The manifest is renamed away first (the checkpoint reads as incomplete), then the
        # .pt goes, then the renamed manifest.
        assert order.index(("rename", mp.name)) < order.index(("unlink", pt.name))
    assert not [n for n in os.listdir(tmp_path / "checkpoints") if n.endswith(".tmp")]
    assert apply_retention(tmp_path, keep_last=3, protect_steps=(100,)) == []


def test_retention_counts_only_verified_checkpoints(tmp_path: Path) -> None:
    for s in (100, 200, 300, 400):
        save_checkpoint(tmp_path, s, 0, small_state(s))
    flip_byte(checkpoint_paths(tmp_path, 400)[0])  # complete by size, fails its hash
    deleted = apply_retention(tmp_path, keep_last=2, protect_steps=(400,))
    # 400 is neither counted nor deleted: 300 and 200 are the two verified ones kept.
    assert [d.step for d in deleted] == [100]
    assert [i.step for i in list_checkpoints(tmp_path)] == [200, 300, 400]
    # With fewer verified checkpoints than keep_last, nothing goes.
    flip_byte(checkpoint_paths(tmp_path, 300)[0])
    assert apply_retention(tmp_path, keep_last=2) == []
    assert [i.step for i in list_checkpoints(tmp_path)] == [200, 300, 400]


def test_retention_interrupted_leaves_incomplete_not_complete(tmp_path: Path, monkeypatch) -> None:
    for s in (100, 200, 300):
        save_checkpoint(tmp_path, s, 0, small_state(s))
    real_unlink = pathlib.Path.unlink

    def fail_on_pt(self, missing_ok=False):
        if self.suffix == ".pt":
            raise OSError(5, "Input/output error")
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(pathlib.Path, "unlink", fail_on_pt)
    with pytest.raises(OSError):
        apply_retention(tmp_path, keep_last=1)
    monkeypatch.undo()
    state = {i.step: i.complete for i in list_checkpoints(tmp_path)}
    assert state == {100: False, 200: False, 300: True}
    assert find_resume_checkpoint(tmp_path)[0].step == 300


def test_retention_rejects_zero(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_last"):
        apply_retention(tmp_path, keep_last=0)


def test_clean_leftovers_removes_only_temp_files(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 100, 0, small_state(100))
    ck = tmp_path / "checkpoints"
    (ck / ".ckpt_00000200.pt.deadbeef.tmp").write_bytes(b"x")
    (ck / ".ckpt_00000100.json.deadbeef.tmp").write_bytes(b"{")
    (tmp_path / ".config.yaml.0123abcd.tmp").write_text("a: 1")
    sample_dir = tmp_path / "samples" / "step_00000100"
    sample_dir.mkdir(parents=True)
    (sample_dir / ".0001_gen.wav.k2j3h4.tmp").write_bytes(b"RIFF")
    (sample_dir / "0001_gt.wav").write_bytes(b"RIFF")
    (tmp_path / "config.yaml").write_text("a: 1")
    (tmp_path / "events.jsonl").write_text("")
    left = clean_leftovers(tmp_path)
    assert sorted(p.name for p in left.removed) == sorted(
        [
            ".ckpt_00000200.pt.deadbeef.tmp",
            ".ckpt_00000100.json.deadbeef.tmp",
            ".config.yaml.0123abcd.tmp",
            ".0001_gen.wav.k2j3h4.tmp",
        ]
    )
    assert left.kept_aside == [] and left.recovered == []
    assert names(tmp_path) == ["ckpt_00000100.json", "ckpt_00000100.pt"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoints", "config.yaml", "events.jsonl", "samples"]
    assert os.listdir(sample_dir) == ["0001_gt.wav"]
    assert clean_leftovers(tmp_path).removed == []


def test_clean_leftovers_leaves_other_writers_temp_files(tmp_path: Path) -> None:
    # A trainer starting while `nal-tui watch` writes watch.json (or a dashboard rebuilds
    # events.idx) must not delete their in-flight temp files: seen in a demo run, where the
    # watcher then said "cannot write .../watch.json: No such file or directory".
    watch_tmp = temp_path_for(tmp_path / STATE_FILE)
    index_tmp = temp_path_for(tmp_path / "events.idx")
    pid_tmp = temp_path_for(tmp_path / PID_FILE)
    for p in (watch_tmp, index_tmp, pid_tmp):
        p.write_bytes(b"{}")
    left = clean_leftovers(tmp_path)
    assert [p.name for p in left.removed] == [pid_tmp.name]
    assert watch_tmp.exists() and index_tmp.exists() and not pid_tmp.exists()


@pytest.mark.parametrize("intact", [True, False])
def test_manifest_less_pt_is_kept_aside_never_deleted(tmp_path: Path, intact: bool) -> None:
    save_checkpoint(tmp_path, 100, 0, small_state(100))
    info = save_checkpoint(tmp_path, 200, 0, small_state(200))
    info.manifest_path.unlink()  # the manifest was lost; the .pt may well be intact
    if not intact:
        info.path.write_bytes(b"not a torch file")
    data = info.path.read_bytes()
    left = clean_leftovers(tmp_path)
    assert [p.name for p, _ in left.kept_aside] == ["ckpt_00000200.pt"]
    what = left.kept_aside[0][1]
    assert ("loads (a training state of step 200)" in what) == intact
    assert ("does not load" in what) == (not intact)
    aside = tmp_path / left.kept_aside_dir
    assert aside.parent == tmp_path / "checkpoints" / "abandoned"
    assert "no-manifest" in aside.name and "step-200" in aside.name
    assert (aside / "ckpt_00000200.pt").read_bytes() == data  # moved, byte for byte
    assert names(tmp_path) == ["abandoned", "ckpt_00000100.json", "ckpt_00000100.pt"]
    assert find_resume_checkpoint(tmp_path)[0].step == 100


# ----------------------------------------------------------------------------- RNG


def draw() -> tuple:
    return (
        [random.random() for _ in range(5)],
        random.gauss(0, 1),
        np.random.rand(5).tolist(),
        float(np.random.standard_normal()),
        torch.rand(5).tolist(),
        torch.randn(3).tolist(),
    )


def test_rng_round_trip_through_weights_only_load() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gauss value that must be captured too
    np.random.standard_normal()
    buf = io.BytesIO()
    torch.save(capture_rng_state(), buf)
    expected = draw()
    assert draw() != expected  # the generators moved on
    buf.seek(0)
    restored = torch.load(buf, weights_only=True)
    assert restore_rng_state(restored) == []
    assert draw() == expected


def test_restore_rejects_malformed_state() -> None:
    state = capture_rng_state()
    del state["numpy"]
    with pytest.raises(CheckpointError, match="rng state: missing 'numpy'"):
        restore_rng_state(state)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rng_round_trip() -> None:
    torch.cuda.manual_seed_all(5)
    torch.cuda.init()
    buf = io.BytesIO()
    torch.save(capture_rng_state(), buf)
    assert "cuda" in torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    expected = torch.rand(5, device="cuda").tolist()
    buf.seek(0)
    assert restore_rng_state(torch.load(buf, weights_only=True)) == []
    assert torch.rand(5, device="cuda").tolist() == expected
