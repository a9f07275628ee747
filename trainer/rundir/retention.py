"""Retention: which live checkpoints may be deleted, and deleting them so a kill half-way
loses nothing that is kept (torch-free: the one definition of what retention may delete)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from trainer.rundir.checkpoints import (
    CheckpointInfo,
    Verifier,
    list_checkpoints,
    verify_checkpoint,
)
from trainer.rundir.layout import CHECKPOINTS_DIR, CheckpointError, fsync_dir, temp_path_for
from trainer.rundir.manifest import read_manifest


def apply_retention(
    run_dir: str | os.PathLike[str],
    keep_last: int,
    protect_steps: Iterable[int] = (),
    verify: Verifier = verify_checkpoint,
) -> list[CheckpointInfo]:
    """Delete live checkpoints older than the newest ``keep_last`` verified ones.

    Milestones and ``protect_steps`` (the checkpoint just written) stay. Only checkpoints
    that pass ``verify`` count toward keep_last: an incomplete or unverifiable one is neither
    counted nor deleted, so it never costs a good one its place; with fewer than keep_last
    verified checkpoints nothing is deleted. Abandoned branches are never looked at.

    Each doomed checkpoint's manifest is first renamed to a hidden temp (from then on it
    reads as incomplete), then its files are unlinked, then that temp. A kill half-way
    leaves a checkpoint that the next start recovers (and a later retention deletes again),
    or only a temp file.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    complete = [i for i in list_checkpoints(run_dir) if i.complete]
    keep = set(protect_steps) | {i.step for i in complete if i.milestone}
    counted, cut = 0, len(complete)
    for idx in range(len(complete) - 1, -1, -1):
        if counted >= keep_last:
            break
        cut = idx
        if verify(complete[idx])[0]:
            counted += 1
    if counted < keep_last:
        return []
    doomed = [i for i in complete[:cut] if i.step not in keep]
    if not doomed:
        return []
    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    staged: list[tuple[Path, list[Path]]] = []
    for info in doomed:
        names = {info.path.name}
        try:
            names |= {f.name for f in read_manifest(info.manifest_path).files}
        except CheckpointError:
            pass
        tmp = temp_path_for(info.manifest_path)
        os.rename(info.manifest_path, tmp)
        staged.append((tmp, [info.path.with_name(n) for n in sorted(names)]))
    fsync_dir(ckdir)
    for _, files in staged:
        for p in files:
            p.unlink(missing_ok=True)
    fsync_dir(ckdir)
    for tmp, _ in staged:
        tmp.unlink(missing_ok=True)
    fsync_dir(ckdir)
    return doomed
