"""Checkpoints as found on disk: describe one, list the live branch and the abandoned ones,
verify one against its manifest. Nothing here hashes unless asked to verify."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.events.schema import VAL_SET
from trainer.rundir.layout import (
    ABANDONED_DIR,
    CHECKPOINTS_DIR,
    CKPT_NAME_RE,
    CKPT_PREFIX,
    CKPT_SUFFIX,
    MANIFEST_SUFFIX,
    TMP_NAME_RE,
    CheckpointError,
    ManifestError,
    sha256_file,
)
from trainer.rundir.manifest import BestRecord, ParentRef, read_manifest


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint as found on disk; ``reason`` says why it is incomplete."""

    step: int
    path: Path
    manifest_path: Path
    bytes: int
    sha256: str | None
    created: float | None
    milestone: bool
    complete: bool
    reason: str = ""
    epoch: int | None = None
    temp_files: tuple[Path, ...] = field(default=())
    branch: str | None = None  # from the manifest; None for manifests older than branches
    abandoned: bool = False  # in checkpoints/abandoned/<dir>/, off the live branch
    parent: ParentRef | None = None
    config_sha256: str | None = None
    # {set: {metric: value}}; outside eq/hash (a dict), so a CheckpointInfo stays hashable.
    validation: dict[str, dict[str, float]] | None = field(default=None, compare=False)
    best: BestRecord | None = None  # the ledger's note at save time (see best_checkpoints)

    def score(self, metric: str, set_name: str = VAL_SET) -> float | None:
        """This checkpoint's validation ``metric`` on ``set_name``, if it was validated."""
        return (self.validation or {}).get(set_name, {}).get(metric)


def _is_abandoned_path(pt: Path) -> bool:
    up = pt.parent.parent
    return up.name == ABANDONED_DIR and up.parent.name == CHECKPOINTS_DIR


def checkpoint_info(
    path: str | os.PathLike[str], temp_files: tuple[Path, ...] = ()
) -> CheckpointInfo:
    """Describe the checkpoint at ``path`` (.pt or its .json manifest) without hashing it."""
    p = Path(path)
    m = CKPT_NAME_RE.match(p.name)
    if m is None:
        raise CheckpointError(
            f"{p}: not a checkpoint name (expected ckpt_<step, 8 digits>.pt, e.g. ckpt_00000050.pt)"
        )
    step = int(m.group(1))
    pt = p.with_name(f"{CKPT_PREFIX}{m.group(1)}{CKPT_SUFFIX}")
    mp = p.with_name(f"{CKPT_PREFIX}{m.group(1)}{MANIFEST_SUFFIX}")
    abandoned = _is_abandoned_path(pt)
    try:
        size_on_disk = pt.stat().st_size
    except OSError:
        size_on_disk = None

    def incomplete(reason: str, **kw: Any) -> CheckpointInfo:
        base = {"bytes": size_on_disk or 0, "sha256": None, "created": None, "milestone": False}
        base.update(kw)
        return CheckpointInfo(
            step=step,
            path=pt,
            manifest_path=mp,
            complete=False,
            reason=reason,
            temp_files=temp_files,
            abandoned=abandoned,
            **base,
        )

    if not mp.exists():
        if size_on_disk is None:
            if temp_files:
                return incomplete("interrupted save: only temp files left")
            return incomplete("file does not exist")
        return incomplete("no manifest (save did not finish)")
    try:
        man = read_manifest(mp)
    except ManifestError as e:
        return incomplete(f"manifest unreadable: {e}")
    entry = next((f for f in man.files if f.name == pt.name), None)
    kw = {
        "bytes": entry.bytes if entry else 0,
        "sha256": entry.sha256 if entry else None,
        "created": man.created,
        "milestone": man.milestone,
        "epoch": man.epoch,
        "branch": man.branch,
        "parent": man.parent,
        "config_sha256": man.config_sha256,
        "validation": man.validation,
        "best": man.best,
    }
    if man.step != step:
        return incomplete(f"manifest says step {man.step}, file name says {step}", **kw)
    if entry is None:
        return incomplete(f"manifest does not list {pt.name}", **kw)
    for f in man.files:
        fp = pt.with_name(f.name)
        try:
            size = fp.stat().st_size
        except OSError:
            return incomplete(f"{f.name} is missing", **kw)
        if size != f.bytes:
            return incomplete(
                f"{f.name} has {size} bytes, manifest says {f.bytes} (truncated?)", **kw
            )
    return CheckpointInfo(
        step=step,
        path=pt,
        manifest_path=mp,
        complete=True,
        temp_files=temp_files,
        abandoned=abandoned,
        **kw,
    )


def _list_dir(d: Path) -> list[CheckpointInfo]:
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return []
    steps: dict[str, list[Path]] = {}
    for name in names:
        if m := CKPT_NAME_RE.match(name):
            steps.setdefault(m.group(1), [])
        elif m := TMP_NAME_RE.match(name):
            steps.setdefault(m.group(1), []).append(d / name)
    infos = [
        checkpoint_info(d / f"{CKPT_PREFIX}{s}{CKPT_SUFFIX}", tuple(sorted(tmps)))
        for s, tmps in steps.items()
    ]
    return sorted(infos, key=lambda i: i.step)


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[CheckpointInfo]:
    """The live branch's checkpoints, complete or not, sorted by step (no hashing)."""
    return _list_dir(Path(run_dir) / CHECKPOINTS_DIR)


def list_abandoned(run_dir: str | os.PathLike[str]) -> list[CheckpointInfo]:
    """Every checkpoint moved aside (abandoned branches, manifest-less files kept aside).

    Sorted by directory (their names start with the time they were moved), then by step.
    """
    base = Path(run_dir) / CHECKPOINTS_DIR / ABANDONED_DIR
    try:
        subdirs = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [info for name in subdirs for info in _list_dir(base / name)]


def verify_checkpoint(info: CheckpointInfo) -> tuple[bool, str]:
    """Re-hash every file the manifest lists; (True, "ok") or (False, why not)."""
    if not info.complete:
        return False, info.reason or "incomplete"
    try:
        man = read_manifest(info.manifest_path)
    except ManifestError as e:
        return False, f"manifest unreadable: {e}"
    for f in man.files:
        fp = info.manifest_path.with_name(f.name)
        try:
            size, digest = sha256_file(fp)
        except OSError as e:
            return False, f"{fp}: cannot read ({e.strerror or e})"
        if size != f.bytes:
            return False, f"{fp}: {size} bytes, manifest says {f.bytes} (truncated?)"
        if digest != f.sha256:
            return False, f"{fp}: sha256 mismatch (file is corrupt)"
    return True, "ok"


Verifier = Callable[[CheckpointInfo], tuple[bool, str]]
