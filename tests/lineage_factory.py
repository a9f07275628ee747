"""Checkpoints on disk as save_checkpoint writes them (without torch), for lineage tests."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from trainer.rundir.layout import atomic_write_text, checkpoint_paths
from trainer.rundir.manifest import Manifest, ManifestFile, ParentRef


def ckpt(
    run_dir: Path,
    step: int,
    branch: str | None = "B0",
    parent: ParentRef | None = None,
    where: Path | None = None,
) -> Path:
    """A checkpoint as save_checkpoint writes it (without torch), in checkpoints/ or ``where``."""
    pt, _ = checkpoint_paths(run_dir, step)
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
        pt = where / pt.name
    pt.parent.mkdir(parents=True, exist_ok=True)
    data = f"weights of step {step} on {branch}".encode() * 50
    pt.write_bytes(data)
    m = Manifest(
        step=step,
        epoch=0,
        created=time.time(),
        milestone=False,
        files=(ManifestFile(pt.name, len(data), hashlib.sha256(data).hexdigest()),),
        branch=branch,
        parent=parent,
    )
    atomic_write_text(pt.with_suffix(".json"), m.to_json())
    return pt


def tree(run_dir: Path) -> dict[str, bytes]:
    """Every checkpoint file under checkpoints/ by name -> bytes (to prove nothing is lost)."""
    out = {}
    for root, _, files in os.walk(run_dir / "checkpoints"):
        for f in files:
            if f.startswith("ckpt_"):
                assert f not in out, f"{f} exists twice"
                out[f] = (Path(root) / f).read_bytes()
    return out


def steps(infos) -> list[int]:
    return [i.step for i in infos]
