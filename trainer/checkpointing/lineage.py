"""Moving checkpoints between the live branch and abandoned/ (journaled), branch plans.

Torch-free. The read side (what is live, what is abandoned, which checkpoint is "latest",
what a run directory holds) is in :mod:`trainer.rundir`; this module holds what the trainer
does to the run directory when it starts: finish an interrupted move, give a manifest-less
checkpoint its manifest back or keep it aside, and move checkpoints off (or back onto) the
live branch so that ``checkpoints/`` stays one linear chain. Every move is an os.rename
inside the run directory, journaled first, never a copy or a delete. Call these only while
holding the run's RunLock.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The plan is torch-free (the dashboard reads it too); the trainer reaches it through here.
from trainer.rundir.branching import BranchPlan, new_branch_id, plan_start  # noqa: F401
from trainer.rundir.checkpoints import (
    CheckpointInfo,
    checkpoint_info,
)
from trainer.rundir.layout import (
    ABANDONED_DIR,
    CHECKPOINTS_DIR,
    CKPT_NAME_RE,
    CKPT_PREFIX,
    MANIFEST_SUFFIX,
    MOVE_JOURNAL,
    TMP_SUFFIX,
    CheckpointError,
    ManifestError,
    atomic_write_text,
    fsync_dir,
    sha256_file,
)
from trainer.rundir.manifest import read_manifest

# --------------------------------------------------------------- lineage, branches


def _checkpoint_files(info: CheckpointInfo) -> list[Path]:
    """The files of a checkpoint that exist: the .pt (and any other listed file), manifest last."""
    names = [info.path.name]
    try:
        names += [f.name for f in read_manifest(info.manifest_path).files if f.name not in names]
    except CheckpointError:
        pass
    files = [info.path.with_name(n) for n in names] + [info.manifest_path]
    return [f for f in files if os.path.lexists(f)]


def _new_abandoned_dir(run_dir: Path, steps: Sequence[int], label: str = "") -> Path:
    lo, hi = min(steps), max(steps)
    what = f"step-{lo}" if lo == hi else f"steps-{lo}-{hi}"
    name = f"{time.strftime('%Y%m%d-%H%M%S')}_{label + '_' if label else ''}{what}"
    base = run_dir / CHECKPOINTS_DIR / ABANDONED_DIR
    cand, i = base / name, 2
    while os.path.lexists(cand):
        cand, i = base / f"{name}_{i}", i + 1
    return cand


def _apply_moves(run_dir: Path, moves: Sequence[tuple[Path, Path]]) -> None:
    touched: set[Path] = set()
    for src, dst in moves:
        if not dst.parent.is_dir():
            dst.parent.mkdir(parents=True, exist_ok=True)
            touched |= {dst.parent.parent, dst.parent.parent.parent}
        # os.rename replaces an existing target silently: never let it.
        if os.path.lexists(src) and not os.path.lexists(dst):
            os.rename(src, dst)
        touched |= {src.parent, dst.parent}
    for d in sorted(touched):
        if d.is_dir():
            fsync_dir(d)


def move_files(run_dir: str | os.PathLike[str], moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename each (src, dst) inside ``run_dir``/checkpoints, journaled (see MOVE_JOURNAL).

    Never overwrites: a target that exists (and is not itself moved away first) is an error
    raised before anything moves. Call while holding the RunLock.
    """
    if not moves:
        return
    rd = Path(run_dir)
    ckdir = rd / CHECKPOINTS_DIR
    sources = {src for src, _ in moves}
    for src, dst in moves:
        if os.path.lexists(dst) and dst not in sources:
            raise CheckpointError(f"cannot move {src} to {dst}: the target exists")
    journal = {"moves": [[os.path.relpath(s, rd), os.path.relpath(d, rd)] for s, d in moves]}
    atomic_write_text(ckdir / MOVE_JOURNAL, json.dumps(journal) + "\n")
    _apply_moves(rd, moves)
    os.unlink(ckdir / MOVE_JOURNAL)
    fsync_dir(ckdir)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def finish_interrupted_move(run_dir: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """Complete a move that a killed trainer left half done; returns the renames it made."""
    rd = Path(run_dir)
    jp = rd / CHECKPOINTS_DIR / MOVE_JOURNAL
    try:
        data = json.loads(jp.read_bytes())
        pairs = data["moves"]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{jp}: unreadable move journal ({e}); finish moving the checkpoints it lists by "
            f"hand, then delete it"
        ) from None
    ck_root = os.path.realpath(rd / CHECKPOINTS_DIR)
    moves: list[tuple[Path, Path]] = []
    for pair in pairs if isinstance(pairs, list) else [None]:
        ok = isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        paths = [rd / x for x in pair] if ok else []
        if not ok or not all(
            _inside(os.path.realpath(p.parent), ck_root) and not Path(x).is_absolute()
            for p, x in zip(paths, pair, strict=True)
        ):
            raise CheckpointError(f"{jp}: garbled move journal entry {str(pair)[:80]}")
        moves.append((paths[0], paths[1]))
    pending = [(s, d) for s, d in moves if os.path.lexists(s) and not os.path.lexists(d)]
    _apply_moves(rd, moves)
    os.unlink(jp)
    fsync_dir(jp.parent)
    return pending


def keep_aside(
    run_dir: str | os.PathLike[str], paths: Sequence[Path], label: str = "no-manifest"
) -> Path:
    """Move checkpoint files that cannot be vouched for into a new abandoned/<dir>/.

    Returns that directory, relative to ``run_dir``. Nothing is deleted.
    """
    rd = Path(run_dir)
    steps = [int(m.group(1)) for p in paths if (m := CKPT_NAME_RE.match(p.name))] or [0]
    aside = _new_abandoned_dir(rd, steps, label)
    move_files(rd, [(p, aside / p.name) for p in paths])
    return aside.relative_to(rd)


def _matches(path: Path, size: int, sha256: str) -> bool:
    try:
        return sha256_file(path) == (size, sha256)
    except OSError:
        return False


def recover_interrupted_saves(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Finish saves that a kill interrupted after both of their files were fully written.

    save_checkpoint writes and fsyncs the .pt temp and the manifest temp before renaming
    either. A kill between those renames leaves a manifest temp that parses, names its step
    and lists sha256s that the .pt (already renamed, or still a temp) matches: such a save is
    finished by renaming the files into place. Returns the checkpoints recovered.
    """
    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    try:
        names = sorted(os.listdir(ckdir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    recovered: list[Path] = []
    for name in names:
        if not (name.startswith(f".{CKPT_PREFIX}") and name.endswith(TMP_SUFFIX)):
            continue
        final = name[1:].split(".json.", 1)[0] + MANIFEST_SUFFIX
        m = CKPT_NAME_RE.match(final)
        if m is None or m.group(2) != "json" or not name.startswith(f".{final}."):
            continue
        mp = ckdir / final
        if mp.exists():
            continue
        try:
            man = read_manifest(ckdir / name)
        except ManifestError:
            continue
        if man.step != int(m.group(1)) or len(man.files) != 1:
            continue
        (entry,) = man.files
        pt = ckdir / entry.name
        if pt.name != f"{CKPT_PREFIX}{m.group(1)}.pt":
            continue
        if not pt.exists():
            temps = [ckdir / n for n in names if n.startswith(f".{pt.name}.")]
            src = next((t for t in temps if _matches(t, entry.bytes, entry.sha256)), None)
            if src is None:
                continue
            os.rename(src, pt)
            fsync_dir(ckdir)
        elif not _matches(pt, entry.bytes, entry.sha256):
            continue
        os.rename(ckdir / name, mp)
        fsync_dir(ckdir)
        recovered.append(pt)
    return recovered


def apply_plan(
    run_dir: str | os.PathLike[str], plan: BranchPlan
) -> tuple[CheckpointInfo | None, Path | None]:
    """Carry out ``plan``'s moves (journaled); returns (start where it now lies, the
    run-dir-relative abandoned dir the live checkpoints went to, or None)."""
    rd = Path(run_dir)
    moves: list[tuple[Path, Path]] = []
    aside = None
    if plan.abandon:
        aside = _new_abandoned_dir(rd, [c.step for c in plan.abandon])
        for c in plan.abandon:
            moves += [(f, aside / f.name) for f in _checkpoint_files(c)]
    live_dir = rd / CHECKPOINTS_DIR
    for c in plan.restore:
        moves += [(f, live_dir / f.name) for f in _checkpoint_files(c)]
    move_files(rd, moves)
    for d in {c.path.parent for c in plan.restore}:
        try:
            d.rmdir()  # only succeeds when the restore emptied it
        except OSError:
            pass
    start = plan.start
    if start is not None and start.abandoned:
        start = checkpoint_info(live_dir / start.path.name)
    return start, (aside.relative_to(rd) if aside is not None else None)


# ------------------------------------------------------- model config (torch-free)

# The config sections that define the model's architecture and its input features. A
# checkpoint saved under other values is a different model: resuming it is refused, with the
# differing keys named. Everything else (optimiser, loss weights, batch, logging) may change
# between resumes.
MODEL_CONFIG_SECTIONS = ("audio", "generator", "discriminator")
NOT_MODEL_KEYS = frozenset({"audio.segment_size"})  # the training crop only


def model_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The model-defining part of a config dict (``trainer.config.to_dict``)."""
    out: dict[str, Any] = {}
    for sec in MODEL_CONFIG_SECTIONS:
        vals = cfg.get(sec)
        if isinstance(vals, dict):
            out[sec] = {k: v for k, v in vals.items() if f"{sec}.{k}" not in NOT_MODEL_KEYS}
    return out


def config_digest(model_cfg: dict[str, Any]) -> str:
    """sha256 of a model config in canonical JSON (the manifest's ``config_sha256``)."""
    blob = json.dumps(model_cfg, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def clean_text(text: str, n: int = 60) -> str:
    """``text`` without control characters, cut to ``n`` characters (for one-line messages)."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= n else text[: n - 1] + "…"


def short_value(v: Any, n: int = 40) -> str:
    try:
        text = json.dumps(v, default=str)  # escapes control characters
    except (TypeError, ValueError):
        text = "?"
    return text if len(text) <= n else text[: n - 1] + "…"


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: <saved> in the checkpoint, <current> in the config`` for each differing key."""
    a, b = _flatten(saved), _flatten(current)
    out = []
    for k in sorted(a.keys() | b.keys()):
        va, vb = a.get(k, "(absent)"), b.get(k, "(absent)")
        if va != vb:
            out.append(
                f"{clean_text(k)}: {short_value(va)} in the checkpoint, {short_value(vb)} now"
            )
    return out
