"""Run-directory layout, checkpoint manifests, lineage and "latest", the run lock, the PID file.

Torch-free and numpy-free on purpose: ``nal_tui`` and preflight import this package to list
and verify checkpoints, to find the run's latest checkpoint and to identify the trainer
process. A checkpoint counts as complete only once its JSON manifest is in place; the
manifest is always renamed into place last.

Lineage: ``checkpoints/`` holds the *live branch* only, one linear chain. Resuming from step
S while live checkpoints after S exist starts a new branch: those later checkpoints are moved
aside (os.rename, never copied or deleted) into ``checkpoints/abandoned/<dir>/``, where they
stay listed and resumable by path, and retention never sees them. "latest" is the newest
live checkpoint that passes verification. This package is the one definition of those
rules; :mod:`trainer.lineage` carries out the moves.

The parts: :mod:`.layout` (names, atomic writes, hashing, the checkpoint errors),
:mod:`.manifest`, :mod:`.checkpoints` (describe, list, verify), :mod:`.resolve` ("latest",
"best" and paths), :mod:`.retention` (what may be deleted), :mod:`.history` (what a run
directory holds), :mod:`.lock` (run lock and PID file). Every name is importable from ``trainer.rundir`` itself.
"""

from __future__ import annotations

from trainer.rundir.checkpoints import (
    CheckpointInfo,
    Verifier,
    checkpoint_info,
    list_abandoned,
    list_checkpoints,
    verify_checkpoint,
)
from trainer.rundir.history import (
    RunHistory,
    fresh_start_refusal,
    log_last_step,
    run_history,
    suggest_run_dir,
)
from trainer.rundir.layout import (
    ABANDONED_DIR,
    CHECKPOINTS_DIR,
    CKPT_NAME_RE,
    CKPT_PREFIX,
    CKPT_SUFFIX,
    CONFIG_FILE,
    EVENTS,
    HASH_CHUNK,
    LOCK_FILE,
    MANIFEST_FORMAT,
    MANIFEST_SUFFIX,
    MOVE_JOURNAL,
    PID_FILE,
    SAMPLES_DIR,
    TMP_NAME_RE,
    TMP_SUFFIX,
    TRAIN_LOG,
    CheckpointError,
    ManifestError,
    NoValidCheckpoint,
    atomic_write_bytes,
    atomic_write_text,
    checkpoint_paths,
    fsync_dir,
    open_exclusive,
    sha256_file,
    temp_path_for,
    unlink_quiet,
)
from trainer.rundir.lock import (
    CREATE_TIME_TOLERANCE,
    PidFileError,
    PidInfo,
    RunLock,
    RunLocked,
    own_pid_info,
    parse_pid_info,
    process_matches,
    read_pid_file,
)
from trainer.rundir.manifest import (
    BestRecord,
    Manifest,
    ManifestFile,
    ParentRef,
    parse_manifest,
    read_manifest,
)
from trainer.rundir.resolve import (
    best_checkpoint,
    best_checkpoints,
    better,
    checkpoint_path_arg,
    describe_skipped,
    find_resume_checkpoint,
    is_run_checkpoint,
    latest_checkpoint,
    ledger_spec,
    rank_best,
    resolve_checkpoint,
)
from trainer.rundir.retention import apply_retention

__all__ = [
    "ABANDONED_DIR",
    "CHECKPOINTS_DIR",
    "CKPT_NAME_RE",
    "CKPT_PREFIX",
    "CKPT_SUFFIX",
    "CONFIG_FILE",
    "CREATE_TIME_TOLERANCE",
    "EVENTS",
    "HASH_CHUNK",
    "LOCK_FILE",
    "MANIFEST_FORMAT",
    "MANIFEST_SUFFIX",
    "MOVE_JOURNAL",
    "PID_FILE",
    "SAMPLES_DIR",
    "TMP_NAME_RE",
    "TMP_SUFFIX",
    "TRAIN_LOG",
    "BestRecord",
    "CheckpointError",
    "CheckpointInfo",
    "Manifest",
    "ManifestError",
    "ManifestFile",
    "NoValidCheckpoint",
    "ParentRef",
    "PidFileError",
    "PidInfo",
    "RunHistory",
    "RunLock",
    "RunLocked",
    "Verifier",
    "apply_retention",
    "atomic_write_bytes",
    "atomic_write_text",
    "best_checkpoint",
    "best_checkpoints",
    "better",
    "checkpoint_info",
    "checkpoint_path_arg",
    "checkpoint_paths",
    "describe_skipped",
    "find_resume_checkpoint",
    "fresh_start_refusal",
    "fsync_dir",
    "is_run_checkpoint",
    "latest_checkpoint",
    "ledger_spec",
    "list_abandoned",
    "list_checkpoints",
    "log_last_step",
    "open_exclusive",
    "own_pid_info",
    "parse_manifest",
    "process_matches",
    "rank_best",
    "read_manifest",
    "parse_pid_info",
    "read_pid_file",
    "resolve_checkpoint",
    "run_history",
    "sha256_file",
    "suggest_run_dir",
    "temp_path_for",
    "unlink_quiet",
    "verify_checkpoint",
]
