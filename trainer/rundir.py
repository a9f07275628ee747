"""Run-directory layout, checkpoint manifests, lineage and "latest", the run lock, the PID file.

Torch-free and numpy-free on purpose: ``nal_tui`` and preflight import this module to list
and verify checkpoints, to find the run's latest checkpoint and to identify the trainer
process. A checkpoint counts as complete only once its JSON manifest is in place; the
manifest is always renamed into place last.

Lineage: ``checkpoints/`` holds the *live branch* only, one linear chain. Resuming from step
S while live checkpoints after S exist starts a new branch: those later checkpoints are moved
aside (os.rename, never copied or deleted) into ``checkpoints/abandoned/<dir>/``, where they
stay listed and resumable by path, and retention never sees them. "latest" is the newest
live checkpoint that passes verification. This module is the one definition of those rules;
:mod:`trainer.lineage` carries out the moves.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from trainer.events import EVENTS_FILE, METRIC_HIGHER_IS_BETTER, VAL_SET

# ------------------------------------------------------------------------ layout

EVENTS = EVENTS_FILE
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
HASH_CHUNK = 1 << 20  # 1 MiB: large enough to stream at disk speed, small enough for RAM.

_CKPT_RE = re.compile(r"^ckpt_(\d{8,})\.(pt|json)$")
CKPT_NAME_RE = _CKPT_RE  # public: ckpt_<step>.pt|json
# Temp names look like ".ckpt_00001000.pt.<hex>.tmp" (see atomic_write_bytes / save_checkpoint).
_TMP_RE = re.compile(r"^\.ckpt_(\d{8,})\.(pt|json)\.[0-9a-f]+\.tmp$")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file."""


class ManifestError(CheckpointError):
    """A manifest that is missing, not JSON, or lacks/mistypes a field."""


class NoValidCheckpoint(CheckpointError):
    """Resume was asked for but no checkpoint passes verification."""


class RunLocked(RuntimeError):
    """Another trainer holds the run directory's lock."""


class PidFileError(ValueError):
    """A PID file that is not valid JSON or lacks/mistypes a field."""


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
        _unlink_quiet(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _unlink_quiet(path: str | os.PathLike[str]) -> None:
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


# ----------------------------------------------------------------------- manifests


@dataclass(frozen=True)
class ManifestFile:
    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ParentRef:
    """The checkpoint a branch was started from (step, its .pt sha256, its branch)."""

    step: int
    sha256: str | None
    branch: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "sha256": self.sha256, "branch": self.branch}


@dataclass(frozen=True)
class BestRecord:
    """The best-checkpoint ledger's note in a manifest (``checkpoint.best`` at save time).

    ``among``: the checkpoint entered the best ``keep`` when it was saved (it may drop out
    later; the ledger itself is always derived from the manifests on disk, see
    :func:`best_checkpoints`). ``since_best``: validations in a row worse than the best so
    far, for the overtraining alert to carry on across a resume from this checkpoint.
    """

    metric: str
    keep: int
    score: float | None
    among: bool
    since_best: int = 0
    best_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != inf


inf = float("inf")


def _parse_validation(raw: Any) -> dict[str, dict[str, float]] | None:
    """``{set: {metric: value}}`` with finite numbers only; anything else is dropped.

    Lenient on purpose: these records are notes about a checkpoint, never a reason to
    refuse weights whose hash is fine.
    """
    if not isinstance(raw, dict):
        return None
    out: dict[str, dict[str, float]] = {}
    for name, metrics in list(raw.items())[:8]:
        if isinstance(name, str) and isinstance(metrics, dict):
            vals = {
                k: float(v)
                for k, v in list(metrics.items())[:32]
                if isinstance(k, str) and _finite_number(v)
            }
            if vals:
                out[name[:40]] = vals
    return out or None


def _parse_best(raw: Any) -> BestRecord | None:
    if not isinstance(raw, dict):
        return None
    metric, keep, score = raw.get("metric"), raw.get("keep"), raw.get("score")
    since, best_step = raw.get("since_best", 0), raw.get("best_step")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if metric not in METRIC_HIGHER_IS_BETTER or not is_int(keep) or keep < 1:
        return None
    return BestRecord(
        metric=metric,
        keep=keep,
        score=float(score) if _finite_number(score) else None,
        among=raw.get("among") is True,
        since_best=since if is_int(since) and since >= 0 else 0,
        best_step=best_step if is_int(best_step) else None,
    )


@dataclass(frozen=True)
class Manifest:
    step: int
    epoch: int
    created: float
    milestone: bool
    files: tuple[ManifestFile, ...]
    config_sha256: str | None = None
    format: int = MANIFEST_FORMAT
    # Lineage (optional; manifests written before branches existed lack both): the id of
    # the branch that wrote this checkpoint, and the checkpoint that branch started from
    # (None for a branch trained from step 0).
    branch: str | None = None
    parent: ParentRef | None = None
    # The model-defining part of the config (see model_config), so a checkpoint saved by a
    # different model configuration is named key by key without unpickling anything.
    model_config: dict[str, Any] | None = None
    # Validation at this step ({set: {metric: value}}; None: not validated at this step) and
    # the best-checkpoint ledger's note (None: no ledger configured). Optional, additive.
    validation: dict[str, dict[str, float]] | None = None
    best: BestRecord | None = None

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "format": self.format,
            "step": self.step,
            "epoch": self.epoch,
            "created": self.created,
            "milestone": self.milestone,
            "files": [asdict(f) for f in self.files],
        }
        if self.config_sha256 is not None:
            d["config_sha256"] = self.config_sha256
        if self.branch is not None:
            d["branch"] = self.branch
            d["parent"] = self.parent.to_dict() if self.parent is not None else None
        if self.model_config is not None:
            d["model_config"] = self.model_config
        if self.validation:
            d["validation"] = self.validation
        if self.best is not None:
            d["best"] = self.best.to_dict()
        return json.dumps(d, indent=1, allow_nan=False) + "\n"


def _typed(d: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise ManifestError(f"{where}: missing field {key!r}")
    v = d[key]
    # bool is an int subclass; a manifest with "step": true is garbled, not step 1.
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ManifestError(f"{where}: field {key!r} has type bool")
    if not isinstance(v, types):
        raise ManifestError(f"{where}: field {key!r} has type {type(v).__name__}")
    return v


def parse_manifest(text: str | bytes, where: str = "manifest") -> Manifest:
    """Parse manifest JSON; raises ManifestError naming ``where`` and the bad field."""
    try:
        d = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ManifestError(f"{where}: not a JSON object")
    fmt = _typed(d, "format", int, where)
    if fmt != MANIFEST_FORMAT:
        raise ManifestError(f"{where}: format {fmt}, this version reads {MANIFEST_FORMAT}")
    raw_files = _typed(d, "files", list, where)
    if not raw_files:
        raise ManifestError(f"{where}: field 'files' is empty")
    files = []
    for i, rf in enumerate(raw_files):
        fw = f"{where}: files[{i}]"
        if not isinstance(rf, dict):
            raise ManifestError(f"{fw} is not an object")
        name = _typed(rf, "name", str, fw)
        # Names are plain file names inside checkpoints/; anything else could point outside.
        if not name or name != os.path.basename(name) or name in (".", ".."):
            raise ManifestError(f"{fw}: name {name!r} is not a plain file name")
        files.append(
            ManifestFile(name, _typed(rf, "bytes", int, fw), _typed(rf, "sha256", str, fw))
        )
    cfg = d.get("config_sha256")
    if cfg is not None and not isinstance(cfg, str):
        raise ManifestError(f"{where}: field 'config_sha256' has type {type(cfg).__name__}")
    branch = d.get("branch")
    if branch is not None and not isinstance(branch, str):
        raise ManifestError(f"{where}: field 'branch' has type {type(branch).__name__}")
    parent = None
    rp = d.get("parent")
    if rp is not None:
        pw = f"{where}: parent"
        if not isinstance(rp, dict):
            raise ManifestError(f"{pw} is not an object")
        p_sha, p_branch = rp.get("sha256"), rp.get("branch")
        if p_sha is not None and not isinstance(p_sha, str):
            raise ManifestError(f"{pw}: field 'sha256' has type {type(p_sha).__name__}")
        if p_branch is not None and not isinstance(p_branch, str):
            raise ManifestError(f"{pw}: field 'branch' has type {type(p_branch).__name__}")
        parent = ParentRef(_typed(rp, "step", int, pw), p_sha, p_branch)
    model_cfg = d.get("model_config")
    if model_cfg is not None and not isinstance(model_cfg, dict):
        raise ManifestError(f"{where}: field 'model_config' has type {type(model_cfg).__name__}")
    return Manifest(
        step=_typed(d, "step", int, where),
        epoch=_typed(d, "epoch", int, where),
        created=float(_typed(d, "created", (int, float), where)),
        milestone=_typed(d, "milestone", bool, where),
        files=tuple(files),
        config_sha256=cfg,
        format=fmt,
        branch=branch,
        parent=parent,
        model_config=model_cfg,
        validation=_parse_validation(d.get("validation")),
        best=_parse_best(d.get("best")),
    )


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file; ManifestError names the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read manifest ({e.strerror or e})") from None
    return parse_manifest(data, where=str(path))


# --------------------------------------------------------------------- checkpoints


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
    m = _CKPT_RE.match(p.name)
    if m is None:
        raise CheckpointError(f"{p}: not a checkpoint name (expected ckpt_<step>.pt)")
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
        if m := _CKPT_RE.match(name):
            steps.setdefault(m.group(1), [])
        elif m := _TMP_RE.match(name):
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


# ----------------------------------------------------------- "latest" and resolving

Verifier = Callable[[CheckpointInfo], tuple[bool, str]]


def _check(info: CheckpointInfo, verify: Verifier) -> tuple[bool, str]:
    # An incomplete checkpoint never reaches ``verify``: its reason is already known.
    if not info.complete:
        return False, info.reason or "incomplete"
    return verify(info)


def latest_checkpoint(
    run_dir: str | os.PathLike[str], verify: Verifier = verify_checkpoint
) -> tuple[CheckpointInfo | None, list[tuple[CheckpointInfo, str]]]:
    """The newest live-branch checkpoint that passes ``verify``, and the newer ones skipped.

    ``verify`` maps a complete CheckpointInfo to (ok, reason): the dashboard passes a cached
    hash check, the trainer and ``nal-train verify`` a full load test. Abandoned branches are
    never candidates. Returns (None, skipped) when no live checkpoint passes.
    """
    skipped: list[tuple[CheckpointInfo, str]] = []
    for info in reversed(list_checkpoints(run_dir)):
        ok, reason = _check(info, verify)
        if ok:
            return info, skipped
        skipped.append((info, reason))
    return None, skipped


def describe_skipped(skipped: Sequence[tuple[CheckpointInfo, str]], limit: int = 3) -> str:
    """'step 30: why; step 25: why; and 4 more' (bounded, for one-line messages)."""
    parts = [f"step {i.step}: {r}" for i, r in skipped[:limit]]
    if len(skipped) > limit:
        parts.append(f"and {len(skipped) - limit} more")
    return "; ".join(parts)


def checkpoint_path_arg(run_dir: str | os.PathLike[str], which: str | os.PathLike[str]) -> Path:
    """A checkpoint given by path: absolute, relative to the cwd, to the run dir or to its
    checkpoints/ (first that exists; else the path as given)."""
    p = Path(which)
    if p.is_absolute():
        return p
    rd = Path(run_dir)
    for cand in (p, rd / p, rd / CHECKPOINTS_DIR / p):
        if cand.exists():
            return cand
    return p


def resolve_checkpoint(
    run_dir: str | os.PathLike[str],
    which: str | os.PathLike[str],
    verify: Verifier = verify_checkpoint,
) -> CheckpointInfo:
    """``latest``, ``best`` or a path (see checkpoint_path_arg), checked with ``verify``.

    Raises NoValidCheckpoint with a message naming what is wrong.
    """
    which_s = os.fspath(which)
    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    if which_s == "latest":
        info, skipped = latest_checkpoint(run_dir, verify)
        if info is not None:
            return info
        if not skipped:
            raise NoValidCheckpoint(f"no checkpoints in {ckdir}; nothing to resume from")
        raise NoValidCheckpoint(f"no usable checkpoint in {ckdir} ({describe_skipped(skipped)})")
    if which_s == "best":
        info, skipped = best_checkpoint(run_dir, verify)
        assert info is not None or skipped  # best_checkpoint raises when nothing is ranked
        if info is not None:
            return info
        raise NoValidCheckpoint(
            f"no usable best checkpoint in {ckdir} ({describe_skipped(skipped)})"
        )
    path = checkpoint_path_arg(run_dir, which_s)
    try:
        info = checkpoint_info(path)
    except CheckpointError as e:
        raise NoValidCheckpoint(str(e)) from None
    ok, reason = _check(info, verify)
    if not ok:
        raise NoValidCheckpoint(f"cannot resume from {info.path}: {reason}")
    return info


# ------------------------------------------------------------- best-checkpoint ledger


def better(metric: str, a: float, b: float) -> bool:
    """True when score ``a`` is strictly better than ``b`` for ``metric``."""
    return a > b if METRIC_HIGHER_IS_BETTER[metric] else a < b


def ledger_spec(infos: Sequence[CheckpointInfo]) -> tuple[str, int] | None:
    """(metric, keep) of the newest complete checkpoint that carries a ledger note."""
    for info in reversed(infos):
        if info.complete and info.best is not None:
            return info.best.metric, info.best.keep
    return None


def rank_best(infos: Iterable[CheckpointInfo], metric: str) -> list[CheckpointInfo]:
    """Complete checkpoints validated on ``metric``, best first (ties: the earlier step)."""
    scored = [(i, i.score(metric)) for i in infos if i.complete]
    ranked = [(i, v) for i, v in scored if v is not None]
    sign = -1.0 if METRIC_HIGHER_IS_BETTER[metric] else 1.0
    ranked.sort(key=lambda iv: (sign * iv[1], iv[0].step))
    return [i for i, _ in ranked]


def best_checkpoints(
    run_dir: str | os.PathLike[str],
    metric: str,
    keep: int,
    verify: Verifier | None = None,
) -> list[CheckpointInfo]:
    """The ledger: the ``keep`` best validated checkpoints of the live branch, best first.

    Derived from the manifests on disk, never from a process's memory, so it survives
    resumes and branches: checkpoints moved to ``abandoned/`` leave the live ledger (they are
    never deleted and stay resumable by path). With ``verify``, only checkpoints that pass it
    are ranked. Every entry is a checkpoint that exists.
    """
    out: list[CheckpointInfo] = []
    for info in rank_best(list_checkpoints(run_dir), metric):
        if len(out) >= keep:
            break
        if verify is None or verify(info)[0]:
            out.append(info)
    return out


def best_checkpoint(
    run_dir: str | os.PathLike[str], verify: Verifier = verify_checkpoint
) -> tuple[CheckpointInfo | None, list[tuple[CheckpointInfo, str]]]:
    """``best``: the live branch's best validated checkpoint that passes ``verify``, and the
    better-ranked ones skipped with reasons. The metric is the one the newest ledger note
    names (``checkpoint.best.metric`` of the run's latest save).

    Raises NoValidCheckpoint naming why when nothing can be ranked: no ledger configured,
    or no live checkpoint validated on its metric.
    """
    live = list_checkpoints(run_dir)
    spec = ledger_spec(live)
    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    if spec is None:
        any_ledger = any(i.best is not None for i in list_abandoned(run_dir) if i.complete)
        where = (
            "; the abandoned branches in checkpoints/abandoned/ have some: resume one by path"
            if any_ledger
            else ""
        )
        raise NoValidCheckpoint(
            f"no best-checkpoint ledger in {ckdir}: the live branch has no checkpoint saved "
            f"with checkpoint.best set (add checkpoint.best: {{metric: mel_l1, keep: 3}} to "
            f"the config, or use latest or a path){where}"
        )
    metric, _keep = spec
    ranked = rank_best(live, metric)
    if not ranked:
        raise NoValidCheckpoint(
            f"no checkpoint in {ckdir} was validated on {metric} yet (checkpoint.best ranks "
            f"checkpoints saved at a validation step)"
        )
    skipped: list[tuple[CheckpointInfo, str]] = []
    for info in ranked:
        ok, reason = _check(info, verify)
        if ok:
            return info, skipped
        skipped.append((info, reason))
    return None, skipped


def is_run_checkpoint(run_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """True when ``path`` lies in ``run_dir``'s checkpoints/ or one of its abandoned dirs."""
    ck = os.path.realpath(Path(run_dir) / CHECKPOINTS_DIR)
    d = os.path.realpath(Path(path).parent)
    return d == ck or os.path.dirname(d) == os.path.join(ck, ABANDONED_DIR)


# ------------------------------------------------------------------- run history


@dataclass(frozen=True)
class RunHistory:
    """What a run directory already holds (see :func:`run_history`)."""

    last_step: int  # the live branch's last step (event log, or the newest live checkpoint)
    latest: CheckpointInfo | None  # newest complete live checkpoint (not hashed)
    n_checkpoints: int  # complete live checkpoints
    n_abandoned: int  # checkpoints moved aside
    branch: str | None  # branch of the newest complete live checkpoint
    last_status: str | None  # the final run_end's status; None when running or crashed


def _reverse_records(path: Path, block: int = 1 << 16) -> Iterable[dict[str, Any]]:
    """Parsed event records from the end of the log backwards; garbled lines are skipped."""
    from trainer.events import EventError, loads

    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; this is a generator
    except (FileNotFoundError, NotADirectoryError):
        return
    with f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            n = min(block, pos)
            pos -= n
            f.seek(pos)
            lines = (f.read(n) + rest).split(b"\n")
            rest = lines[0]  # may continue in the previous block
            for line in reversed(lines[1:]):
                if line.strip():
                    try:
                        yield loads(line)
                    except EventError:
                        continue
        if rest.strip():
            try:
                yield loads(rest)
            except EventError:
                pass


def _int_field(rec: dict[str, Any], key: str) -> int | None:
    v = rec.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def log_last_step(events_path: str | os.PathLike[str]) -> tuple[int, str | None, bool]:
    """(last step of the live branch, final run_end status or None, any record at all).

    Reader rule (docs/events.md): a ``run_start`` begins at its ``start_step``; steps logged
    before it beyond that point belong to an abandoned branch. So only the records after the
    last ``run_start`` (or after the last step/checkpoint record) are read, from the end.
    """
    last = 0
    status: str | None = None
    first = True
    seen = False
    for rec in _reverse_records(Path(events_path)):
        seen = True
        kind = rec.get("event")
        if first:
            first = False
            if kind == "run_end" and isinstance(rec.get("status"), str):
                status = rec["status"]
        if kind == "run_start":
            last = max(last, _int_field(rec, "start_step") or 0)
            break
        s = _int_field(rec, "step")
        if s is not None:
            last = max(last, s)
        if kind in ("step", "checkpoint"):
            break  # progress records: nothing earlier in this run is later
    return last, status, seen


def run_history(run_dir: str | os.PathLike[str]) -> RunHistory | None:
    """What ``run_dir`` holds, or None when it holds no run (no step logged, no checkpoint).

    Used to refuse a fresh start in a directory that already holds a run (the trainer,
    ``nal-tui start``), and for the real last step of a run whose resume failed.
    """
    rd = Path(run_dir)
    log_step, status, _ = log_last_step(rd / EVENTS)
    live = list_checkpoints(rd)
    if log_step <= 0 and not live:
        return None
    complete = [c for c in live if c.complete]
    latest = complete[-1] if complete else None
    return RunHistory(
        last_step=max([log_step] + [c.step for c in live]),
        latest=latest,
        n_checkpoints=len(complete),
        n_abandoned=len(list_abandoned(rd)),
        branch=latest.branch if latest else None,
        last_status=status,
    )


def _is_free(path: Path) -> bool:
    if not path.exists():
        return True
    if not path.is_dir() or (path / PID_FILE).exists():
        return False
    return run_history(path) is None and not list_abandoned(path)


def suggest_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """A free sibling for a new run: ``logs/demo`` -> the first free of demo-2, demo-3, ..."""
    p = Path(run_dir)
    m = re.fullmatch(r"(.+?)-(\d+)", p.name)
    base = m.group(1) if m else p.name
    for i in range(2, 100_000):
        cand = p.with_name(f"{base}-{i}")
        if _is_free(cand):
            return cand
    return p.with_name(f"{base}-{secrets.token_hex(3)}")


def fresh_start_refusal(run_dir: str | os.PathLike[str], hist: RunHistory) -> str:
    """Why ``nal-train train`` without --resume refuses ``run_dir``, and the choices."""
    newest = (
        f", newest checkpoint at step {hist.latest.step}"
        if hist.latest is not None
        else ", no complete checkpoint"
    )
    return (
        f"{run_dir} already holds a run (last step {hist.last_step}{newest}); starting "
        f"from step 0 there would mix two runs. Choose: --resume latest to continue it; "
        f"--run-dir {suggest_run_dir(run_dir)} to start a new run elsewhere; or --new-branch "
        f"to start over from step 0 in {run_dir} (its checkpoints are moved aside to "
        f"{CHECKPOINTS_DIR}/{ABANDONED_DIR}/, nothing is deleted)"
    )


# ------------------------------------------------------------------ PID file, lock


@dataclass(frozen=True)
class PidInfo:
    pid: int
    create_time: float
    cmdline: list[str]
    started: float
    run_dir: str


CREATE_TIME_TOLERANCE = 1e-2


def read_pid_file(run_dir: str | os.PathLike[str]) -> PidInfo | None:
    """The trainer's PID file, or None when there is none; PidFileError if garbled."""
    path = Path(run_dir) / PID_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise PidFileError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise PidFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise PidFileError(f"{path}: not a JSON object")
    spec = {
        "pid": int,
        "create_time": (int, float),
        "cmdline": list,
        "started": (int, float),
        "run_dir": str,
    }
    for key, types in spec.items():
        if key not in d:
            raise PidFileError(f"{path}: missing field {key!r}")
        if isinstance(d[key], bool) or not isinstance(d[key], types):
            raise PidFileError(f"{path}: field {key!r} has type {type(d[key]).__name__}")
    if not all(isinstance(a, str) for a in d["cmdline"]):
        raise PidFileError(f"{path}: field 'cmdline' must be a list of strings")
    if d["pid"] <= 0:
        raise PidFileError(f"{path}: field 'pid' must be positive, got {d['pid']}")
    return PidInfo(
        pid=d["pid"],
        create_time=float(d["create_time"]),
        cmdline=list(d["cmdline"]),
        started=float(d["started"]),
        run_dir=d["run_dir"],
    )


def process_matches(info: PidInfo) -> bool:
    """True only if a live process has this pid, create_time and cmdline (gate for signals)."""
    try:
        proc = psutil.Process(info.pid)
        if abs(proc.create_time() - info.create_time) > CREATE_TIME_TOLERANCE:
            return False
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.cmdline() == info.cmdline
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def own_pid_info(run_dir: str | os.PathLike[str]) -> PidInfo:
    """PidInfo describing the current process."""
    me = psutil.Process()
    return PidInfo(
        pid=me.pid,
        create_time=me.create_time(),
        cmdline=me.cmdline(),
        started=time.time(),
        run_dir=os.path.abspath(run_dir),
    )


class RunLock:
    """Exclusive lock on a run directory plus its PID file; use as a context manager.

    The lock is a ``flock`` on ``run.lock``; it dies with the process, so a crash never
    leaves a stale lock. Caveat: forked DataLoader workers inherit the locked descriptor
    (O_CLOEXEC only covers exec), so the workers of a killed trainer hold the lock until
    they exit, which they do once they notice the parent is gone.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None
        self._owner_pid: int | None = None
        self.info: PidInfo | None = None

    def acquire(self) -> PidInfo:
        if self._fd is not None:
            raise RuntimeError(f"{self.run_dir}: lock already held by this RunLock")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.run_dir / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLocked(self._locked_message()) from None
            raise
        try:
            info = own_pid_info(self.run_dir)
            # The pid also goes into the lock file: a fallback for the message above when
            # the PID file is gone (e.g. removed by hand).
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{info.pid}\n".encode(), 0)
            atomic_write_text(self.run_dir / PID_FILE, json.dumps(asdict(info)) + "\n")
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self._fd, self._owner_pid, self.info = fd, os.getpid(), info
        return info

    def _locked_message(self) -> str:
        owner = "unknown pid"
        try:
            info = read_pid_file(self.run_dir)
            if info is not None:
                owner = f"pid {info.pid}, started {time.ctime(info.started)}"
        except PidFileError:
            pass
        if owner == "unknown pid":
            try:
                txt = (self.run_dir / LOCK_FILE).read_text().strip()
                if txt.isdigit():
                    owner = f"pid {txt}"
            except OSError:
                pass
        return (
            f"{self.run_dir} is in use by another trainer ({owner}); "
            f"stop it first, or wait for its DataLoader workers to exit"
        )

    def release(self) -> None:
        # A forked child must not unlock: flock on the inherited descriptor would drop the
        # parent's lock too.
        if self._fd is None or os.getpid() != self._owner_pid:
            return
        try:
            current = read_pid_file(self.run_dir)
        except PidFileError:
            current = None
        if (
            current is not None
            and self.info is not None
            and current.pid == self.info.pid
            and abs(current.create_time - self.info.create_time) <= CREATE_TIME_TOLERANCE
        ):
            _unlink_quiet(self.run_dir / PID_FILE)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
