"""Run directory: manifests, listing/verification, atomic writes, run lock, PID file."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from trainer.rundir.checkpoints import list_checkpoints, verify_checkpoint
from trainer.rundir.layout import (
    LOCK_FILE,
    PID_FILE,
    ManifestError,
    atomic_write_bytes,
    atomic_write_text,
    checkpoint_paths,
)
from trainer.rundir.lock import (
    PidFileError,
    PidInfo,
    RunLock,
    process_matches,
    read_pid_file,
)
from trainer.rundir.manifest import Manifest, ManifestFile, read_manifest


def fake_checkpoint(
    run_dir: Path, step: int, data: bytes = b"", milestone: bool = False, manifest: bool = True
) -> Path:
    """A checkpoint written the way save_checkpoint does, without torch."""
    pt, mp = checkpoint_paths(run_dir, step)
    pt.parent.mkdir(parents=True, exist_ok=True)
    data = data or f"weights of step {step}".encode() * 100
    pt.write_bytes(data)
    if manifest:
        m = Manifest(
            step=step,
            epoch=step // 10,
            created=time.time(),
            milestone=milestone,
            files=(ManifestFile(pt.name, len(data), hashlib.sha256(data).hexdigest()),),
        )
        atomic_write_text(mp, m.to_json())
    return pt


# ----------------------------------------------------------------- layout / hygiene


def test_checkpoint_paths_naming(tmp_path: Path) -> None:
    pt, mp = checkpoint_paths(tmp_path, 1234)
    assert pt == tmp_path / "checkpoints" / "ckpt_00001234.pt"
    assert mp == tmp_path / "checkpoints" / "ckpt_00001234.json"


# ------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "a: 1\n")
    atomic_write_text(target, "a: 2\n")
    assert target.read_text() == "a: 2\n"
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "old\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new\n")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["config.yaml"]


# ----------------------------------------------------------------------- manifests


def test_manifest_round_trip(tmp_path: Path) -> None:
    m = Manifest(
        step=5,
        epoch=1,
        created=12.5,
        milestone=True,
        files=(ManifestFile("ckpt_00000005.pt", 10, "ab" * 32),),
        config_sha256="cd" * 32,
    )
    p = tmp_path / "m.json"
    p.write_text(m.to_json())
    assert json.loads(p.read_text())["format"] == 1
    assert read_manifest(p) == m


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"format": 1, "step": 5', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (
            '{"format": 1, "epoch": 0, "created": 1, "milestone": false, '
            '"files": [{"name": "a.pt", "bytes": 1, "sha256": "x"}]}',
            "'step'",
        ),
        (
            '{"format": 1, "step": "5", "epoch": 0, "created": 1, "milestone": false, '
            '"files": [{"name": "a.pt", "bytes": 1, "sha256": "x"}]}',
            "'step' has type str",
        ),
        (
            '{"format": 1, "step": 5, "epoch": 0, "created": 1, "milestone": false, '
            '"files": [{"name": "../x.pt", "bytes": 1, "sha256": "x"}]}',
            "not a plain file name",
        ),
        (
            '{"format": 1, "step": 5, "epoch": 0, "created": 1, "milestone": false, '
            '"files": [{"name": "a.pt", "sha256": "x"}]}',
            "files[0]: missing field 'bytes'",
        ),
        (
            '{"format": 9, "step": 5, "epoch": 0, "created": 1, "milestone": false, "files": []}',
            "format 9",
        ),
    ],
)
def test_bad_manifest_names_file_and_problem(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "ckpt_00000005.json"
    p.write_text(text)
    with pytest.raises(ManifestError) as ei:
        read_manifest(p)
    assert str(p) in str(ei.value)
    assert needle in str(ei.value)


# ---------------------------------------------------------------- list and verify


def test_list_checkpoints_sorted_complete_and_verified(tmp_path: Path) -> None:
    for s in (300, 100, 200):
        fake_checkpoint(tmp_path, s, milestone=(s == 100))
    infos = list_checkpoints(tmp_path)
    assert [i.step for i in infos] == [100, 200, 300]
    assert all(i.complete for i in infos)
    assert [i.milestone for i in infos] == [True, False, False]
    assert infos[0].bytes == infos[0].path.stat().st_size
    assert all(verify_checkpoint(i) == (True, "ok") for i in infos)


def test_list_checkpoints_without_dir_is_empty(tmp_path: Path) -> None:
    assert list_checkpoints(tmp_path) == []


def test_incomplete_checkpoints_are_listed_never_verified(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path, 100)
    fake_checkpoint(tmp_path, 200, manifest=False)  # killed before the manifest
    ckdir = tmp_path / "checkpoints"
    (ckdir / ".ckpt_00000300.pt.0a1b2c3d.tmp").write_bytes(b"half")  # killed in torch.save
    infos = {i.step: i for i in list_checkpoints(tmp_path)}
    assert sorted(infos) == [100, 200, 300]
    assert infos[100].complete
    assert not infos[200].complete and "no manifest" in infos[200].reason
    assert not infos[300].complete and "temp" in infos[300].reason
    assert infos[300].temp_files == (ckdir / ".ckpt_00000300.pt.0a1b2c3d.tmp",)
    for s in (200, 300):
        ok, reason = verify_checkpoint(infos[s])
        assert not ok and reason == infos[s].reason


def test_flipped_byte_fails_verification(tmp_path: Path) -> None:
    pt = fake_checkpoint(tmp_path, 100)
    raw = bytearray(pt.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pt.write_bytes(bytes(raw))
    (info,) = list_checkpoints(tmp_path)
    assert info.complete  # size still matches: only hashing can tell
    ok, reason = verify_checkpoint(info)
    assert not ok and "sha256 mismatch" in reason and str(pt) in reason


def test_truncated_file_is_incomplete(tmp_path: Path) -> None:
    pt = fake_checkpoint(tmp_path, 100)
    with open(pt, "r+b") as f:
        f.truncate(10)
    (info,) = list_checkpoints(tmp_path)
    assert not info.complete and "truncated" in info.reason
    assert verify_checkpoint(info)[0] is False


def test_garbled_manifest_and_missing_file_are_incomplete(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path, 100)
    fake_checkpoint(tmp_path, 200)
    checkpoint_paths(tmp_path, 100)[1].write_text("{garbage")
    checkpoint_paths(tmp_path, 200)[0].unlink()
    a, b = list_checkpoints(tmp_path)
    assert not a.complete and "manifest unreadable" in a.reason
    assert not b.complete and "missing" in b.reason


# -------------------------------------------------------------------------- PID file


def _write_pid(run_dir: Path, info: PidInfo) -> None:
    atomic_write_text(run_dir / PID_FILE, json.dumps(info.__dict__))


def test_read_pid_file_absent_is_none(tmp_path: Path) -> None:
    assert read_pid_file(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('"just a string"', "not a JSON object"),
        ('{"pid": 12, "create_time": 1.0, "cmdline": ["x"], "started": 1.0}', "'run_dir'"),
        (
            '{"pid": "12", "create_time": 1.0, "cmdline": ["x"], "started": 1.0, "run_dir": "r"}',
            "'pid' has type str",
        ),
        (
            '{"pid": 12, "create_time": 1.0, "cmdline": [1], "started": 1.0, "run_dir": "r"}',
            "list of strings",
        ),
        (
            '{"pid": true, "create_time": 1.0, "cmdline": [], "started": 1.0, "run_dir": "r"}',
            "'pid' has type bool",
        ),
    ],
)
def test_garbled_pid_file(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / PID_FILE).write_text(text)
    with pytest.raises(PidFileError) as ei:
        read_pid_file(tmp_path)
    assert str(tmp_path / PID_FILE) in str(ei.value)
    assert needle in str(ei.value)


# --------------------------------------------------------------------------- RunLock


def test_lock_writes_pid_file_and_cleans_up(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunLock(run) as lock:
        info = read_pid_file(run)
        assert info is not None and info.pid == os.getpid()
        assert info == lock.info
        assert info.run_dir == str(run.resolve())
        assert process_matches(info)
    assert not (run / PID_FILE).exists()
    assert (run / LOCK_FILE).exists()  # the lock file stays; only the flock goes
    with RunLock(run):  # re-acquirable after release
        pass


def test_release_keeps_someone_elses_pid_file(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        other = PidInfo(
            pid=1, create_time=0.0, cmdline=["init"], started=0.0, run_dir=str(tmp_path)
        )
        _write_pid(tmp_path, other)
    assert read_pid_file(tmp_path) == other


def test_the_run_of_a_checkpoint_path_live_or_abandoned(tmp_path):
    from tests.factory import write_checkpoint
    from trainer.rundir.layout import CONFIG_FILE
    from trainer.rundir.resolve import run_dir_of

    rd = tmp_path / "run"
    live = write_checkpoint(rd, 10)
    aside = write_checkpoint(rd, 50, aside="20260101-000000_steps-40-50")
    assert run_dir_of(live) is None  # not a run yet: no config.yaml
    assert run_dir_of(live, require_config=False) == rd.resolve()  # verify --config works
    (rd / CONFIG_FILE).write_text("name: x\n")
    assert run_dir_of(live) == rd.resolve() and run_dir_of(aside) == rd.resolve()
    stray = tmp_path / "elsewhere" / "ckpt_00000010.pt"
    stray.parent.mkdir()
    stray.write_bytes(b"x")
    assert run_dir_of(stray) is None
