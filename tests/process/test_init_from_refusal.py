"""--init-from given a file of another format is refused before the run directory exists,
naming what is accepted and how to import a reference checkpoint (issue 20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from trainer.events import schema as ev


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", "train", *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def test_init_from_a_reference_file_names_the_formats_and_leaves_no_run(tmp_path: Path) -> None:
    ref = tmp_path / "g_02500000"
    ref.write_bytes(b"PK\x03\x04 a reference generator, not ours")
    run = tmp_path / "ft"
    out = _train("--config", "demo", "--run-dir", str(run), "--init-from", str(ref))
    assert out.returncode == ev.EXIT_NO_CHECKPOINT
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "not a nal-train checkpoint" in out.stderr and "ckpt_<step>.pt" in out.stderr
    assert "nal-train import --format hifigan" in out.stderr
    assert not run.exists()  # nothing that status would call crashed
    assert ref.read_bytes().startswith(b"PK")  # the source untouched


def test_init_from_a_missing_or_manifestless_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "ft"
    out = _train("--config", "demo", "--run-dir", str(run), "--init-from", "nope/ckpt_00000010.pt")
    assert out.returncode == ev.EXIT_NO_CHECKPOINT and "no such file" in out.stderr
    bare = tmp_path / "ckpt_00000010.pt"
    bare.write_bytes(b"weights")
    out = _train("--config", "demo", "--run-dir", str(run), "--init-from", str(bare))
    assert out.returncode == ev.EXIT_NO_CHECKPOINT and "no manifest" in out.stderr
    assert not run.exists()
