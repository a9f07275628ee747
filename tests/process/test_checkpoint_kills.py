"""Checkpoint saves and retention SIGKILLed at chosen points, in a real child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.ckpt_factory import small_state
from trainer.checkpointing.loadtest import load_checkpoint
from trainer.checkpointing.store import clean_leftovers, save_checkpoint
from trainer.rundir.checkpoints import list_checkpoints
from trainer.rundir.layout import checkpoint_paths
from trainer.rundir.resolve import find_resume_checkpoint
from trainer.rundir.retention import apply_retention


def names(run_dir: Path) -> list[str]:
    return sorted(os.listdir(run_dir / "checkpoints"))


# A trainer SIGKILLed at a chosen point of the save (SIGKILL cannot be blocked or handled).
_KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys, torch
    import trainer.checkpointing.store as c
    where, run_dir = sys.argv[1], sys.argv[2]
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if where == "torch_save":
        def partial(obj, f, *a, **k):
            f.write(b"PK\\x03\\x04" + b"\\0" * 100000)
            f.flush()
            die()
        c.torch.save = partial
    elif where == "manifest_temp":
        def half(path, data):
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
            die()
        c._write_synced = half
    else:
        n = {"pt_rename": 1, "manifest_rename": 2}[where]
        real, calls = os.replace, []
        def replace(src, dst):
            calls.append(dst)
            if len(calls) == n:
                die()
            real(src, dst)
        c.os.replace = replace
    c.save_checkpoint(run_dir, 200, 0, {"w": torch.ones(10)})
""")


@pytest.mark.parametrize(
    ("where", "pt_at_final_name", "expect_reason", "recoverable"),
    [
        ("torch_save", False, "temp", False),
        ("manifest_temp", False, "temp", False),
        ("pt_rename", False, "temp", True),
        ("manifest_rename", True, "no manifest", True),
    ],
)
def test_killed_save_falls_back_then_is_finished_or_cleaned(
    tmp_path: Path, where: str, pt_at_final_name: bool, expect_reason: str, recoverable: bool
) -> None:
    save_checkpoint(tmp_path, 100, 0, small_state(100))
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_SAVE, where, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pt200, mp200 = checkpoint_paths(tmp_path, 200)
    assert not mp200.exists()
    assert pt200.exists() == pt_at_final_name  # never a partial file at the final name
    info, skipped = find_resume_checkpoint(tmp_path)
    assert info.step == 100
    assert [(s.step, expect_reason in r) for s, r in skipped] == [(200, True)]
    left = clean_leftovers(tmp_path)
    assert left.kept_aside == [] and left.moved == []
    if recoverable:
        # Both files were written and fsynced before the kill: the save is finished.
        assert left.recovered == [pt200]
        assert names(tmp_path) == [
            "ckpt_00000100.json",
            "ckpt_00000100.pt",
            "ckpt_00000200.json",
            "ckpt_00000200.pt",
        ]
        assert find_resume_checkpoint(tmp_path)[0].step == 200
        assert torch.equal(load_checkpoint(pt200)["w"], torch.ones(10))
    else:
        assert left.recovered == []
        assert left.removed and all("00000200" in p.name for p in left.removed)
        assert names(tmp_path) == ["ckpt_00000100.json", "ckpt_00000100.pt"]
    assert load_checkpoint(info.path)["step"] == 100


def test_retention_killed_between_rename_and_unlink_is_recovered(tmp_path: Path) -> None:
    for s in (100, 200):
        save_checkpoint(tmp_path, s, 0, small_state(s))
    code = textwrap.dedent("""
        import os, signal, sys
        import trainer.checkpointing.store as c
        real = os.rename
        def rename_then_die(src, dst):
            real(src, dst)
            os.kill(os.getpid(), signal.SIGKILL)
        c.os.rename = rename_then_die
        from trainer.rundir.retention import apply_retention
        apply_retention(sys.argv[1], keep_last=1)
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert not checkpoint_paths(tmp_path, 100)[1].exists()  # it reads as incomplete now
    left = clean_leftovers(tmp_path)
    # Nothing was lost: the doomed checkpoint comes back whole, for a later retention.
    assert left.recovered == [checkpoint_paths(tmp_path, 100)[0]] and left.kept_aside == []
    assert [(i.step, i.complete) for i in list_checkpoints(tmp_path)] == [(100, True), (200, True)]
    assert [d.step for d in apply_retention(tmp_path, keep_last=1)] == [100]
