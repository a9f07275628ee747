"""Atomic checkpoints: save, the full load test, retention, start-up cleanup, RNG.

Save order: torch.save into a hidden temp file in ``checkpoints/`` (hashed while writing)
and fsync; the manifest into its own temp file and fsync; os.replace the .pt into place,
fsync the directory; os.replace the manifest into place, last. A checkpoint without its
manifest is incomplete and never resumed from (a save killed between the two renames is
finished at the next start from its manifest temp). Layout, manifests, lineage and "latest"
live in the torch-free :mod:`trainer.rundir` and :mod:`trainer.lineage`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainer import lineage
from trainer.rundir import (
    CHECKPOINTS_DIR,
    HASH_CHUNK,
    SAMPLES_DIR,
    TMP_SUFFIX,
    BestRecord,
    CheckpointError,
    CheckpointInfo,
    Manifest,
    ManifestError,
    ManifestFile,
    NoValidCheckpoint,
    ParentRef,
    Verifier,
    best_checkpoint,
    checkpoint_info,
    checkpoint_paths,
    describe_skipped,
    fsync_dir,
    latest_checkpoint,
    list_checkpoints,
    open_exclusive,
    read_manifest,
    resolve_checkpoint,
    temp_path_for,
    verify_checkpoint,
)

if TYPE_CHECKING:
    from trainer.config import Config

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "Leftovers",
    "LoadTest",
    "NoValidCheckpoint",
    "VerifyCache",
    "apply_retention",
    "capture_rng_state",
    "check_state",
    "clean_leftovers",
    "find_resume_checkpoint",
    "load_checkpoint",
    "probe_orphan",
    "restore_rng_state",
    "safe_load",
    "save_checkpoint",
    "signals_deferred",
]

# The training state's layout (see trainer.loop.Trainer.state_dict). A checkpoint with
# another format is refused by name, never half-loaded.
CHECKPOINT_FORMAT = 1
STATE_KEYS = (
    "generator",
    "discriminators",
    "opt_g",
    "opt_d",
    "sched_g",
    "sched_d",
    "step",
    "epoch",
    "batch_in_epoch",
    "rng",
)

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


def _unlink_quiet(path: Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


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
) -> CheckpointInfo:
    """Write ``state`` as the checkpoint of ``step``, atomically; the manifest goes last.

    ``validation`` ({set: {metric: value}}, finite values) and ``best`` (the ledger's note)
    go into the manifest, where the torch-free side reads them.
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
            _unlink_quiet(tmp)
            if not pt_in_place:  # else the manifest temp is what lets the save be finished
                _unlink_quiet(man_tmp)
            raise
        fsync_dir(pt.parent)
    return checkpoint_info(pt)


# -------------------------------------------------------------------- the load test

_GLOBAL_RE = re.compile(r"GLOBAL ([A-Za-z_][\w.]{0,80})")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _first_line(e: BaseException, limit: int = 160) -> str:
    text = str(e).strip().splitlines()
    line = _CONTROL_RE.sub("?", text[0] if text else type(e).__name__)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _load_error(e: BaseException) -> str:
    """One line saying why torch.load(weights_only=True) refused a file (no torch advice)."""
    text = str(e)
    m = _GLOBAL_RE.search(text)
    if m is not None:
        return (
            f"it holds pickled Python objects or code ({m.group(1)}) that the safe loader "
            f"(weights_only=True) refuses; a training checkpoint holds only tensors and "
            f"plain values"
        )
    if isinstance(e, pickle.UnpicklingError) or "weights only load failed" in text.lower():
        # torch's message is advice around one line of substance, after this marker.
        after = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler" in text else ""
        detail = next((ln.strip() for ln in after.splitlines() if ln.strip()), "unreadable")
        return f"not a readable torch checkpoint (the safe loader stopped at: {lineage.clean_text(detail, 120)})"
    return f"not a readable torch checkpoint ({type(e).__name__}: {_first_line(e)})"


def safe_load(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """torch.load with weights_only=True; CheckpointError with a one-line reason otherwise."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes one line naming the file
        raise CheckpointError(_load_error(e)) from None


def model_shapes(cfg: Config) -> dict[str, dict[str, tuple[int, ...]]]:
    """Parameter and buffer shapes of the config's models, built on the meta device (no memory)."""
    from trainer.models import build_models

    with torch.device("meta"):
        g, d = build_models(cfg)
    return {
        "generator": {k: tuple(v.shape) for k, v in g.state_dict().items()},
        "discriminators": {k: tuple(v.shape) for k, v in d.state_dict().items()},
    }


def _shape_problem(part: str, sd: Any, expected: dict[str, tuple[int, ...]]) -> str | None:
    if not isinstance(sd, dict):
        return f"its {part} is a {type(sd).__name__}, not a state dict"
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    wrong = [
        (k, tuple(sd[k].shape) if isinstance(sd[k], torch.Tensor) else None, shape)
        for k, shape in expected.items()
        if k in sd and (not isinstance(sd[k], torch.Tensor) or tuple(sd[k].shape) != shape)
    ]
    if not (missing or extra or wrong):
        return None
    parts = []
    if wrong:
        k, got, want = wrong[0]
        got_s = list(got) if got is not None else "not a tensor"
        parts.append(
            f"{len(wrong)} tensor(s) of another shape (e.g. {k}: {got_s} in the checkpoint, "
            f"{list(want)} for this config)"
        )
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {lineage.clean_text(extra[0])})")
    return f"its {part} does not fit this config's model: " + ", ".join(parts)


def check_state(
    state: Any,
    step: int,
    model_cfg: dict[str, Any] | None = None,
    shapes: dict[str, dict[str, tuple[int, ...]]] | None = None,
) -> str | None:
    """Why a loaded training state cannot be resumed (format, keys, step, config, shapes)."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a training state dict"
    fmt = state.get("format")
    if fmt is None:
        return "it has no 'format' field (not a nal-train training checkpoint)"
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        return f"its format is {lineage.short_value(fmt)}, not a format number"
    if fmt != CHECKPOINT_FORMAT:
        newer = " (saved by a newer nal-train?)" if fmt > CHECKPOINT_FORMAT else ""
        return f"it has format {fmt}; this nal-train reads format {CHECKPOINT_FORMAT}{newer}"
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        return f"it lacks the key(s) {', '.join(missing)}"
    if state["step"] != step:
        return f"it holds step {lineage.short_value(state['step'])} but is named step {step}"
    saved_cfg = state.get("config")
    if model_cfg is not None and isinstance(saved_cfg, dict):
        problem = config_mismatch(lineage.model_config(saved_cfg), model_cfg)
        if problem:
            return problem
    if shapes is not None:
        for part in ("generator", "discriminators"):
            problem = _shape_problem(part, state[part], shapes[part])
            if problem:
                return problem
    return None


def config_mismatch(saved: dict[str, Any], current: dict[str, Any], limit: int = 4) -> str | None:
    """'saved with a different model configuration: key: a in the checkpoint, b now; ...'."""
    diffs = lineage.config_differences(saved, current)
    if not diffs:
        return None
    more = f"; and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "saved with a different model configuration: " + "; ".join(diffs[:limit]) + more


class LoadTest:
    """The full load test, usable as a ``rundir`` verifier: hash, weights_only load, format,
    keys, and the model config and shapes against ``cfg`` (skipped when ``cfg`` is None).

    The state of the last checkpoint that passed is kept in ``passed`` so the caller never
    loads it twice.

    ``parts`` (for ``nal-train train --init-from``): only these weights are needed, e.g.
    ``("generator",)``; the optimizer, schedule and step keys are not, and model-config keys
    that differ without changing a shape are noted in ``notes`` instead of refused.
    """

    def __init__(self, cfg: Config | None, parts: tuple[str, ...] | None = None) -> None:
        from trainer import config as config_mod

        self.cfg = cfg
        self.model_cfg = lineage.model_config(config_mod.to_dict(cfg)) if cfg else None
        self.parts = parts
        self.notes: list[str] = []
        self._shapes: dict[str, dict[str, tuple[int, ...]]] | None = None
        self.passed: tuple[CheckpointInfo, dict[str, Any]] | None = None

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]] | None:
        if self._shapes is None and self.cfg is not None:
            self._shapes = model_shapes(self.cfg)
        return self._shapes

    def __call__(self, info: CheckpointInfo) -> tuple[bool, str]:
        self.passed = None
        ok, reason = verify_checkpoint(info)
        if not ok:
            return ok, reason
        if self.parts is not None:
            return self._init_test(info)
        if self.model_cfg is not None:
            # Cheap first: the manifest's copy of the model config, nothing unpickled.
            try:
                saved = read_manifest(info.manifest_path).model_config
            except ManifestError as e:
                return False, str(e)
            problem = config_mismatch(saved, self.model_cfg) if saved is not None else None
            if problem:
                return False, problem
        try:
            state = safe_load(info.path)
        except CheckpointError as e:
            return False, str(e)
        problem = check_state(state, info.step, self.model_cfg, self.shapes())
        if problem:
            return False, problem
        self.passed = (info, state)
        return True, "ok"

    def _init_test(self, info: CheckpointInfo) -> tuple[bool, str]:
        """Weights to start another run from: format, the wanted parts, their shapes."""
        assert self.parts is not None
        try:
            state = safe_load(info.path)
        except CheckpointError as e:
            return False, str(e)
        if not isinstance(state, dict):
            return False, f"it holds a {type(state).__name__}, not a training state dict"
        fmt = state.get("format")
        if fmt != CHECKPOINT_FORMAT or isinstance(fmt, bool):
            return (
                False,
                f"its format is {lineage.short_value(fmt)}; this nal-train reads {CHECKPOINT_FORMAT}",
            )
        shapes = self.shapes()
        for part in self.parts:
            if part not in state:
                return False, f"it holds no {part} weights"
            if shapes is not None and part in shapes:  # optimizer states: no shapes here
                problem = _shape_problem(part, state[part], shapes[part])
                if problem:
                    return False, problem
        saved = state.get("config")
        self.notes = []
        if self.model_cfg is not None and isinstance(saved, dict):
            diffs = lineage.config_differences(lineage.model_config(saved), self.model_cfg)
            # Only the sections of the parts taken matter (no discriminator: its keys don't).
            skip = () if "discriminators" in self.parts else ("discriminator.",)
            self.notes = [d for d in diffs if not d.startswith(skip)]
        self.passed = (info, state)
        return True, "ok"


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


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Verify ``path`` against its manifest, then torch.load it with weights_only=True."""
    info = checkpoint_info(path)
    ok, reason = verify_checkpoint(info)
    if not ok:
        raise CheckpointError(f"checkpoint {info.path} is not usable: {reason}")
    try:
        state = safe_load(info.path, map_location=map_location)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {info.path} cannot be loaded: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {info.path} holds a {type(state).__name__}, expected a dict"
        )
    return state


def find_resume_checkpoint(
    run_dir: str | os.PathLike[str],
    which: str | os.PathLike[str] = "latest",
    verify: Verifier = verify_checkpoint,
) -> tuple[CheckpointInfo, list[tuple[CheckpointInfo, str]]]:
    """The checkpoint to resume from and the newer ones skipped (with reasons).

    ``which`` is "latest" (see rundir.latest_checkpoint), "best" (rundir.best_checkpoint:
    better-ranked ones that fail are skipped) or a path, which must pass ``verify``. Raises
    NoValidCheckpoint otherwise.
    """
    if os.fspath(which) not in ("latest", "best"):
        return resolve_checkpoint(run_dir, which, verify), []
    if os.fspath(which) == "best":
        info, skipped = best_checkpoint(run_dir, verify)
    else:
        info, skipped = latest_checkpoint(run_dir, verify)
    if info is not None:
        return info, skipped
    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    if os.fspath(which) == "best":
        raise NoValidCheckpoint(
            f"no usable best checkpoint in {ckdir} ({describe_skipped(skipped)})"
        )
    if not skipped:
        raise NoValidCheckpoint(f"no checkpoints in {ckdir}; nothing to resume from")
    raise NoValidCheckpoint(f"no usable checkpoint in {ckdir} ({describe_skipped(skipped)})")


# ----------------------------------------------------------------------- retention


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


# ----------------------------------------------------------------- start-up cleanup


@dataclass
class Leftovers:
    """What :func:`clean_leftovers` found and did."""

    moved: list[tuple[Path, Path]] = field(default_factory=list)  # an interrupted move, finished
    recovered: list[Path] = field(default_factory=list)  # saves finished from their temps
    removed: list[Path] = field(default_factory=list)  # temp files of unfinished writes
    kept_aside: list[tuple[Path, str]] = field(default_factory=list)  # (.pt, what it holds)
    kept_aside_dir: Path | None = None  # run-dir-relative


def probe_orphan(pt: Path) -> str:
    """What a manifest-less .pt holds, by a weights_only load (nothing is unpickled unsafely)."""
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - described, never raised
        return f"it does not load: {_load_error(e)}"
    step = state.get("step") if isinstance(state, dict) else None
    if isinstance(step, int) and not isinstance(step, bool):
        return f"it loads (a training state of step {step}) but cannot be verified without it"
    return "it loads but holds no training state"


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
    writes (checkpoints, manifests, samples, config); move every .pt that still has no
    manifest into ``checkpoints/abandoned/<time>_no-manifest_.../``, described by ``probe``
    (its bytes cannot be verified, so it is neither resumed from nor deleted). Call at
    start-up while holding the RunLock, so no write of this run is in progress.
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
            if name.startswith(".") and name.endswith(TMP_SUFFIX) and p.is_file():
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
