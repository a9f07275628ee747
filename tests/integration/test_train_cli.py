"""nal-train's command line before any training: the fresh-start refusal (no torch import)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import DEMO_CONFIG, ROOT, nal_train_cmd
from trainer.events import schema as ev
from trainer.events.writer import EventWriter
from trainer.rundir.layout import atomic_write_text, checkpoint_paths
from trainer.rundir.manifest import Manifest, ManifestFile


def _fake_run(run: Path, last_step: int, ckpt_step: int) -> None:
    """A run dir as a finished run leaves it: an event log and one checkpoint."""
    pt, mp = checkpoint_paths(run, ckpt_step)
    pt.parent.mkdir(parents=True)
    pt.write_bytes(b"weights")
    m = Manifest(ckpt_step, 0, time.time(), False, (ManifestFile(pt.name, 7, "0" * 64),))
    atomic_write_text(mp, m.to_json())
    with EventWriter(run / "events.jsonl") as w:
        w.write(ev.RunStart("r", 1, "c.yaml", 0, 100, 1, "cpu", {}))
        for s in range(1, last_step + 1):
            w.write(ev.Step(s, 0, 1.0, 1.0, 1.0, 1.0, 1.0, "mrstft", 1e-4, 1e-4, 0.1, 10.0))
        w.write(ev.RunEnd(last_step, "stopped", "stopped by SIGTERM", 0))


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nal_train_cmd() + ["train", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_fresh_start_in_a_run_dir_that_holds_a_run_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "demo"
    _fake_run(run, last_step=7, ckpt_step=6)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    out = _train("--config", str(DEMO_CONFIG), "--run-dir", str(run))
    assert out.returncode == ev.EXIT_USAGE
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "already holds a run (last step 7, newest checkpoint at step 6)" in out.stderr
    for choice in ("--resume latest", f"--run-dir {tmp_path / 'demo-2'}", "--new-branch"):
        assert choice in out.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_and_new_branch_exclude_each_other(tmp_path: Path) -> None:
    out = _train("--config", str(DEMO_CONFIG), "--resume", "latest", "--new-branch")
    assert out.returncode == ev.EXIT_USAGE and "not allowed with" in out.stderr


def test_resume_or_verify_of_a_mistyped_run_dir_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    typo = tmp_path / "dmeo"
    for out in (
        _train("--resume", "latest", "--run-dir", str(typo)),
        _train("--config", str(DEMO_CONFIG), "--resume", "latest", "--run-dir", str(typo)),
        subprocess.run(
            nal_train_cmd() + ["verify", "--run-dir", str(typo)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        ),
    ):
        assert out.returncode == ev.EXIT_NO_CHECKPOINT, out.stderr
        assert f"there is no run directory {typo}" in out.stderr
        assert f"did you mean {tmp_path / 'demo'}?" in out.stderr
        assert "Traceback" not in out.stderr
    assert not typo.exists()
