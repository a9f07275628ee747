"""Atomic checkpoints: save, verify, load (weights_only), latest-valid resume, retention, RNG.

Save order: torch.save into a hidden temp file in ``checkpoints/`` (hashed while writing),
fsync, os.replace to ``ckpt_<step>.pt``, fsync the directory, then the manifest, last. A
checkpoint without its manifest is incomplete and never resumed from. Layout, manifests and
verification live in the torch-free :mod:`trainer.rundir`.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.rundir import (
    CHECKPOINTS_DIR,
    HASH_CHUNK,
    SAMPLES_DIR,
    TMP_SUFFIX,
    CheckpointError,
    CheckpointInfo,
    Manifest,
    ManifestFile,
    NoValidCheckpoint,
    atomic_write_text,
    checkpoint_info,
    checkpoint_paths,
    fsync_dir,
    list_checkpoints,
    open_exclusive,
    read_manifest,
    temp_path_for,
    verify_checkpoint,
)

__all__ = [
    "CheckpointError",
    "NoValidCheckpoint",
    "apply_retention",
    "capture_rng_state",
    "clean_leftovers",
    "find_resume_checkpoint",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "signals_deferred",
]

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


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    epoch: int,
    state: dict[str, Any],
    milestone: bool = False,
    config_sha256: str | None = None,
) -> CheckpointInfo:
    """Write ``state`` as the checkpoint of ``step``, atomically; the manifest goes last."""
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    pt, man_path = checkpoint_paths(run_dir, step)
    pt.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(pt)
    with signals_deferred():
        try:
            with os.fdopen(open_exclusive(tmp), "wb", buffering=HASH_CHUNK) as f:
                w = _HashingWriter(f)
                torch.save(state, w)
                f.flush()
                os.fsync(f.fileno())
            # Re-saving a step: drop the old manifest first so the new .pt is never paired
            # with a manifest describing different bytes.
            if man_path.exists():
                os.unlink(man_path)
                fsync_dir(pt.parent)
            os.replace(tmp, pt)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        fsync_dir(pt.parent)
        manifest = Manifest(
            step=step,
            epoch=epoch,
            created=time.time(),
            milestone=milestone,
            files=(ManifestFile(pt.name, w.n, w.sha.hexdigest()),),
            config_sha256=config_sha256,
        )
        atomic_write_text(man_path, manifest.to_json())
    return checkpoint_info(pt)


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Verify ``path`` against its manifest, then torch.load it with weights_only=True."""
    info = checkpoint_info(path)
    ok, reason = verify_checkpoint(info)
    if not ok:
        raise CheckpointError(f"checkpoint {info.path} is not usable: {reason}")
    try:
        state = torch.load(info.path, map_location=map_location, weights_only=True)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"checkpoint {info.path} cannot be loaded with weights_only=True "
            f"({type(e).__name__}: {msg})"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {info.path} holds a {type(state).__name__}, expected a dict"
        )
    return state


def find_resume_checkpoint(
    run_dir: str | os.PathLike[str],
    which: str | os.PathLike[str] = "latest",
) -> tuple[CheckpointInfo, list[tuple[CheckpointInfo, str]]]:
    """The checkpoint to resume from and the newer ones skipped (with reasons).

    ``which`` is "latest" (newest verified checkpoint, falling back past corrupt or
    incomplete ones) or a path, which must verify. Raises NoValidCheckpoint otherwise.
    """
    if str(which) != "latest":
        try:
            info = checkpoint_info(which)
        except CheckpointError as e:
            raise NoValidCheckpoint(str(e)) from None
        ok, reason = verify_checkpoint(info)
        if not ok:
            raise NoValidCheckpoint(f"cannot resume from {info.path}: {reason}")
        return info, []
    infos = list_checkpoints(run_dir)
    skipped: list[tuple[CheckpointInfo, str]] = []
    for info in reversed(infos):
        ok, reason = verify_checkpoint(info)
        if ok:
            return info, skipped
        skipped.append((info, reason))
    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    if not infos:
        raise NoValidCheckpoint(f"no checkpoints in {ckdir}; nothing to resume from")
    why = "; ".join(f"step {i.step}: {r}" for i, r in skipped)
    raise NoValidCheckpoint(f"no valid checkpoint in {ckdir} ({why})")


def apply_retention(
    run_dir: str | os.PathLike[str], keep_last: int, protect_steps: Iterable[int] = ()
) -> list[CheckpointInfo]:
    """Delete complete checkpoints beyond the newest ``keep_last``; milestones stay.

    Manifests go first (and are fsynced) so a half-deleted checkpoint reads as incomplete,
    never as complete-but-missing. Incomplete ones are left to :func:`clean_leftovers`.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    complete = [i for i in list_checkpoints(run_dir) if i.complete]
    keep = {i.step for i in complete[-keep_last:]} | set(protect_steps)
    keep |= {i.step for i in complete if i.milestone}
    doomed = [i for i in complete if i.step not in keep]
    if not doomed:
        return []
    files: list[Path] = []
    for info in doomed:
        names = {info.path.name}
        try:
            names |= {f.name for f in read_manifest(info.manifest_path).files}
        except CheckpointError:
            pass
        files += [info.path.with_name(n) for n in sorted(names)]
        info.manifest_path.unlink(missing_ok=True)
    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    fsync_dir(ckdir)
    for p in files:
        p.unlink(missing_ok=True)
    fsync_dir(ckdir)
    return doomed


def clean_leftovers(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove temp files and manifest-less .pt files left by killed saves.

    Call at start-up while holding the RunLock, so no save of this run is in progress.
    """
    run_dir = Path(run_dir)
    removed: list[Path] = []
    for d in (run_dir, run_dir / CHECKPOINTS_DIR, run_dir / SAMPLES_DIR):
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith(".") and name.endswith(TMP_SUFFIX) and (d / name).is_file():
                (d / name).unlink(missing_ok=True)
                removed.append(d / name)
    for info in list_checkpoints(run_dir):
        if info.path.exists() and not info.manifest_path.exists():
            info.path.unlink()
            removed.append(info.path)
    if removed:
        for d in {p.parent for p in removed}:
            fsync_dir(d)
    return sorted(removed)


# ------------------------------------------------------------------------------ RNG


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU (and CUDA when in use) RNG states, weights_only-loadable."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    # Only when CUDA is in use: querying it otherwise would create a CUDA context.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _rng_part(d: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise CheckpointError(f"rng state: missing {key!r}")
    if not isinstance(d[key], kind):
        raise CheckpointError(f"rng state: {key!r} has type {type(d[key]).__name__}")
    return d[key]


def restore_rng_state(d: dict[str, Any]) -> list[str]:
    """Restore what :func:`capture_rng_state` captured; returns notes on what was not."""
    notes: list[str] = []
    py = _rng_part(d, "python", dict)
    py_state = _rng_part(py, "state", torch.Tensor)
    random.setstate(
        (
            int(_rng_part(py, "version", int)),
            tuple(int(x) for x in py_state.tolist()),
            py.get("gauss_next"),
        )
    )
    npd = _rng_part(d, "numpy", dict)
    np.random.set_state(
        {
            "bit_generator": _rng_part(npd, "bit_generator", str),
            "state": {
                "key": _rng_part(npd, "key", torch.Tensor).numpy().astype(np.uint32),
                "pos": int(_rng_part(npd, "pos", int)),
            },
            "has_gauss": int(_rng_part(npd, "has_gauss", int)),
            "gauss": float(_rng_part(npd, "gauss", (int, float))),
        }
    )
    torch.set_rng_state(_rng_part(d, "torch", torch.Tensor).to("cpu", torch.uint8))
    cuda = d.get("cuda")
    if cuda:
        if not torch.cuda.is_available():
            notes.append(f"CUDA RNG state for {len(cuda)} device(s) not restored: no CUDA here")
        else:
            n = min(len(cuda), torch.cuda.device_count())
            for i in range(n):
                torch.cuda.set_rng_state(cuda[i].to("cpu", torch.uint8), i)
            if n < len(cuda):
                notes.append(f"CUDA RNG state restored for {n} of {len(cuda)} device(s)")
    return notes
