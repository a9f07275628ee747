"""Run-directory layout: file and directory names, checkpoint names, atomic writes, hashing.

The errors a checkpoint can raise live here too, so every part of :mod:`trainer.rundir`
(and :mod:`trainer.checkpointing.lineage`) names them from one place.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from trainer.events.schema import EVENTS_FILE, UNSEEN_SET

EVENTS = EVENTS_FILE
LOGS_DIR = Path("logs")  # where runs go by default, relative to the current directory
CONFIG_FILE = "config.yaml"
CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"
TRAIN_LOG = "train.log"
PID_FILE = "trainer.pid"
LOCK_FILE = "run.lock"

ABANDONED_DIR = "abandoned"  # checkpoints/abandoned/<dir>/: checkpoints moved off the live branch
# A move of checkpoint files between directories is journaled here first, so a trainer
# killed half-way through leaves a move that the next start completes (never a split pair).
MOVE_JOURNAL = ".move-journal.json"

MANIFEST_FORMAT = 1
CKPT_PREFIX = "ckpt_"
CKPT_SUFFIX = ".pt"
MANIFEST_SUFFIX = ".json"
TMP_SUFFIX = ".tmp"
# The run directory's top-level files the trainer itself writes atomically (under its
# run lock). Only their temp files there are its leftovers: the others (the watcher's
# watch.json, an index a dashboard rebuilds) are written by processes that hold no lock.
TRAINER_TOP_FILES = frozenset({CONFIG_FILE, PID_FILE})
HASH_CHUNK = 1 << 20  # 1 MiB: large enough to stream at disk speed, small enough for RAM.


# Validation samples: samples/step_XXXXXXXX/<id>_gen.wav (+ .logmel) per validation,
# samples/gt/<id>.wav once per run; the unseen set's one level down in unseen/.
SAMPLES_GT_DIR = "gt"
SAMPLES_UNSEEN_DIR = UNSEEN_SET
GEN_SUFFIX = "_gen"  # <id>_gen.wav: a generated sample
SAMPLE_STEP_RE = re.compile(r"^step_(\d{8,})$")


def sample_dir(run_dir: str | os.PathLike[str], step: int, set_name: str) -> Path:
    """Where a validation of ``set_name`` at ``step`` writes its generated samples."""
    d = Path(run_dir) / SAMPLES_DIR / f"step_{step:08d}"
    return d / SAMPLES_UNSEEN_DIR if set_name == UNSEEN_SET else d


def gt_dir(run_dir: str | os.PathLike[str], set_name: str) -> Path:
    """Where the ground truth of ``set_name``'s samples is written (once per run)."""
    d = Path(run_dir) / SAMPLES_DIR / SAMPLES_GT_DIR
    return d / SAMPLES_UNSEEN_DIR if set_name == UNSEEN_SET else d


def default_run_dir(run_name: str, logs_dir: str | os.PathLike[str] = LOGS_DIR) -> Path:
    """``<logs>/<config name>``: the run directory when none is given (the one definition;
    the trainer, preflight, nal-tui and their help texts use it)."""
    return Path(logs_dir) / run_name


CKPT_NAME_RE = re.compile(r"^ckpt_(\d{8,})\.(pt|json)$")  # ckpt_<step>.pt|json
# Temp names look like ".ckpt_00001000.pt.<hex>.tmp" (see atomic_write_bytes / save_checkpoint).
TMP_NAME_RE = re.compile(r"^\.ckpt_(\d{8,})\.(pt|json)\.[0-9a-f]+\.tmp$")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file."""


class ManifestError(CheckpointError):
    """A manifest that is missing, not JSON, or lacks/mistypes a field."""


class NoValidCheckpoint(CheckpointError):
    """Resume was asked for but no checkpoint passes verification."""


def checkpoint_paths(run_dir: str | os.PathLike[str], step: int) -> tuple[Path, Path]:
    """The (checkpoint .pt, manifest .json) paths of ``step`` in ``run_dir``."""
    d = Path(run_dir) / CHECKPOINTS_DIR
    stem = f"{CKPT_PREFIX}{step:08d}"
    return d / f"{stem}{CKPT_SUFFIX}", d / f"{stem}{MANIFEST_SUFFIX}"


# ------------------------------------------------------------------ atomic writes


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename or unlink inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """A fresh hidden temp name next to ``path`` (same directory, so os.replace is atomic)."""
    p = Path(path)
    return p.with_name(f".{p.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def temp_target(name: str) -> str | None:
    """The file a :func:`temp_path_for` name stands for (``.config.yaml.1f2e3d4c.tmp`` ->
    ``config.yaml``); None for a name of another shape."""
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return None
    target, dot, _ = name[1 : -len(TMP_SUFFIX)].rpartition(".")
    return target if dot and target else None


def open_exclusive(path: str | os.PathLike[str]) -> int:
    """Create ``path`` (must not exist) for writing; mode 0o666 so the umask applies."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a part."""
    path = Path(path)
    tmp = temp_path_for(path)
    fd = open_exclusive(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        unlink_quiet(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def unlink_quiet(path: str | os.PathLike[str] | None) -> None:
    """Remove ``path`` if it is there (None: nothing to remove)."""
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def sha256_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size in bytes, hex sha256) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()
