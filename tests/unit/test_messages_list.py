"""Messages that list what exists: a checkpoint path that names nothing lists the run's
checkpoints (newest first, a few) and the names latest/best; vocode/export say "load"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lineage_factory import ckpt
from trainer.rundir.layout import NoValidCheckpoint
from trainer.rundir.resolve import find_resume_checkpoint, resolve_checkpoint
from trainer.tools.inference import resolve_checkpoint as resolve_for_inference


def _run(tmp_path: Path, steps=(50, 100, 150, 200, 250, 300)) -> Path:
    run = tmp_path / "run"
    for s in steps:
        ckpt(run, s)
    return run


def test_a_misnamed_checkpoint_lists_the_runs_checkpoints(tmp_path: Path) -> None:
    run = _run(tmp_path)
    with pytest.raises(NoValidCheckpoint) as e:
        find_resume_checkpoint(run, "ckpt_0000050.pt")  # 7 digits
    msg = str(e.value)
    assert msg.startswith("cannot resume from ckpt_0000050.pt: not a checkpoint name")
    assert "8 digits" in msg and "ckpt_00000050.pt" in msg
    listed = "holds ckpt_00000300.pt, ckpt_00000250.pt, ckpt_00000200.pt, ckpt_00000150.pt"
    assert listed + " (+2 more); or name latest" in msg
    assert "\n" not in msg


def test_a_missing_checkpoint_lists_them_and_inference_says_load(tmp_path: Path) -> None:
    run = _run(tmp_path, (50, 100))
    with pytest.raises(NoValidCheckpoint) as e:
        resolve_checkpoint(run, "ckpt_00000075.pt")
    assert "cannot resume from" in str(e.value) and "does not exist" in str(e.value)
    assert "holds ckpt_00000100.pt, ckpt_00000050.pt; or name latest" in str(e.value)
    with pytest.raises(NoValidCheckpoint) as e:
        resolve_for_inference(run, "ckpt_00000075.pt")
    assert str(e.value).startswith("cannot load ") and "resume" not in str(e.value)
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(NoValidCheckpoint, match="nothing to load"):
        resolve_for_inference(empty, "latest")
    with pytest.raises(NoValidCheckpoint, match="has no checkpoints yet"):
        resolve_for_inference(empty, "ckpt_00000075.pt")
