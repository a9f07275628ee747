"""Atomic checkpoint saves, a verifier with memory, and the start-up cleanup of killed writes.

Save order: torch.save into a hidden temp file in ``checkpoints/`` (hashed while writing)
and fsync; the manifest into its own temp file and fsync; os.replace the .pt into place,
fsync the directory; os.replace the manifest into place, last. A checkpoint without its
manifest is incomplete and never resumed from (a save killed between the two renames is
finished at the next start from its manifest temp). What the .pt holds is
:mod:`trainer.checkpointing.format`; layout, manifests, "latest" and retention are the
torch-free :mod:`trainer.rundir`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.checkpointing import lineage
from trainer.checkpointing.loadtest import probe_orphan
from trainer.rundir.checkpoints import (
    CheckpointInfo,
    Verifier,
    checkpoint_info,
    list_checkpoints,
    verify_checkpoint,
)
from trainer.rundir.layout import (
    CHECKPOINTS_DIR,
    HASH_CHUNK,
    SAMPLES_DIR,
    TMP_SUFFIX,
    TRAINER_TOP_FILES,
    checkpoint_paths,
    fsync_dir,
    open_exclusive,
    temp_path_for,
    temp_target,
    unlink_quiet,
)
from trainer.rundir.manifest import BestRecord, Manifest, ManifestFile, ParentRef

_DEFERRED_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM pending in this thread; they are delivered on exit.

    The kernel may still hand a signal to another thread, whose Python handler then runs in
    the main thread; the trainer's handler only sets a flag, so that is harmless.
    """
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - non-POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _HashingWriter:
    """Write-only file wrapper that hashes and counts bytes as torch.save streams them."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.n = 0

    def write(self, data: Any) -> int:
        self.sha.update(data)
        n = self._f.write(data)
        self.n += n
        return n

    def flush(self) -> None:
        self._f.flush()


def _write_synced(path: Path, data: bytes) -> None:
    with os.fdopen(open_exclusive(path), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    epoch: int,
    state: dict[str, Any],
    milestone: bool = False,
    config_sha256: str | None = None,
    *,
    branch: str | None = None,
    parent: ParentRef | None = None,
    model_config: dict[str, Any] | None = None,
    validation: dict[str, dict[str, float]] | None = None,
    best: BestRecord | None = None,
    imported: dict[str, Any] | None = None,
) -> CheckpointInfo:
    """Write ``state`` as the checkpoint of ``step``, atomically; the manifest goes last.

    ``validation`` ({set: {metric: value}}, finite values) and ``best`` (the ledger's note)
    go into the manifest, where the torch-free side reads them; so does ``imported`` (the
    sources of a checkpoint made by ``nal-train import``).
    """
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    pt, man_path = checkpoint_paths(run_dir, step)
    pt.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(pt)
    man_tmp: Path | None = None
    pt_in_place = False
    with signals_deferred():
        try:
            with os.fdopen(open_exclusive(tmp), "wb", buffering=HASH_CHUNK) as f:
                w = _HashingWriter(f)
                torch.save(state, w)
                f.flush()
                os.fsync(f.fileno())
            manifest = Manifest(
                step=step,
                epoch=epoch,
                created=time.time(),
                milestone=milestone,
                files=(ManifestFile(pt.name, w.n, w.sha.hexdigest()),),
                config_sha256=config_sha256,
                branch=branch,
                parent=parent,
                model_config=model_config,
                validation=validation,
                best=best,
                imported=imported,
            )
            # Both files are durable before either is renamed: a kill between the renames
            # leaves a save that the next start can finish (lineage.recover_interrupted_saves).
            man_tmp = temp_path_for(man_path)
            _write_synced(man_tmp, manifest.to_json().encode())
            # Re-saving a step: drop the old manifest first so the new .pt is never paired
            # with a manifest describing different bytes.
            if man_path.exists():
                os.unlink(man_path)
                fsync_dir(pt.parent)
            os.replace(tmp, pt)
            pt_in_place = True
            fsync_dir(pt.parent)
            os.replace(man_tmp, man_path)
        except BaseException:
            unlink_quiet(tmp)
            if not pt_in_place:  # else the manifest temp is what lets the save be finished
                unlink_quiet(man_tmp)
            raise
        fsync_dir(pt.parent)
    return checkpoint_info(pt)


class VerifyCache:
    """A verifier with memory: a checkpoint is re-hashed only when its files change."""

    def __init__(self, verify: Verifier = verify_checkpoint) -> None:
        self._verify = verify
        self._memo: dict[tuple[Any, ...], tuple[bool, str]] = {}

    @staticmethod
    def _key(info: CheckpointInfo) -> tuple[Any, ...] | None:
        try:
            a, b = info.path.stat(), info.manifest_path.stat()
        except OSError:
            return None
        # File identity, not path: a checkpoint moved (renamed) keeps its verdict.
        return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, b.st_ino, b.st_size, b.st_mtime_ns)

    def __call__(self, info: CheckpointInfo) -> tuple[bool, str]:
        key = self._key(info)
        if key is None:
            return self._verify(info)
        if key not in self._memo:
            self._memo[key] = self._verify(info)
        return self._memo[key]

    def trust(self, info: CheckpointInfo) -> None:
        """Record a checkpoint this process just saved (hashed as it was written)."""
        key = self._key(info)
        if key is not None:
            self._memo[key] = (True, "ok")


# ----------------------------------------------------------------- start-up cleanup


@dataclass
class Leftovers:
    """What :func:`clean_leftovers` found and did."""

    moved: list[tuple[Path, Path]] = field(default_factory=list)  # an interrupted move, finished
    recovered: list[Path] = field(default_factory=list)  # saves finished from their temps
    removed: list[Path] = field(default_factory=list)  # temp files of unfinished writes
    kept_aside: list[tuple[Path, str]] = field(default_factory=list)  # (.pt, what it holds)
    kept_aside_dir: Path | None = None  # run-dir-relative


def _subdirs(d: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(d) if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _temp_dirs(run_dir: Path) -> list[Path]:
    # samples/ holds step_*/ (and step_*/unseen/), gt/ (and gt/unseen/): two levels.
    dirs = [run_dir, run_dir / CHECKPOINTS_DIR, run_dir / SAMPLES_DIR]
    for sub in _subdirs(run_dir / SAMPLES_DIR):
        dirs += [sub, *_subdirs(sub)]
    return dirs


def clean_leftovers(run_dir: str | os.PathLike[str], probe: Any = probe_orphan) -> Leftovers:
    """Tidy what killed writes left, losing nothing that might be a checkpoint.

    In order: finish an interrupted move of checkpoints; finish saves whose files were both
    written (lineage.recover_interrupted_saves); remove hidden temp files of unfinished
    writes (checkpoints, manifests, samples, config; in the run dir's top level only those of
    the trainer's own files, TRAINER_TOP_FILES); move every .pt that still has no
    manifest into ``checkpoints/abandoned/<time>_no-manifest_.../``, described by ``probe``
    (its bytes cannot be verified, so it is neither resumed from nor deleted). Call at
    start-up while holding the RunLock, so no write of this run's trainer is in progress.
    """
    rd = Path(run_dir)
    out = Leftovers()
    out.moved = lineage.finish_interrupted_move(rd)
    out.recovered = lineage.recover_interrupted_saves(rd)
    touched: set[Path] = set()
    for d in _temp_dirs(rd):
        try:
            names = os.listdir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            p = d / name
            if not (name.startswith(".") and name.endswith(TMP_SUFFIX)) or not p.is_file():
                continue
            if d == rd and temp_target(name) not in TRAINER_TOP_FILES:
                continue  # another process's write in progress (e.g. nal-tui watch's state)
            p.unlink(missing_ok=True)
            out.removed.append(p)
            touched.add(d)
    for d in touched:
        fsync_dir(d)
    out.removed.sort()
    orphans = [
        i.path for i in list_checkpoints(rd) if i.path.exists() and not i.manifest_path.exists()
    ]
    if orphans:
        out.kept_aside = [(p, probe(p)) for p in orphans]
        out.kept_aside_dir = lineage.keep_aside(rd, orphans, "no-manifest")
    return out
