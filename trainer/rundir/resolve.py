"""Which checkpoint: "latest", "best" (the ledger, ranked from the manifests on disk) or a
path, each checked by a verifier; the one definition both the trainer and the dashboard use."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from trainer.events.schema import METRIC_HIGHER_IS_BETTER
from trainer.rundir.checkpoints import (
    CheckpointInfo,
    Verifier,
    checkpoint_info,
    list_abandoned,
    list_checkpoints,
    verify_checkpoint,
)
from trainer.rundir.layout import (
    ABANDONED_DIR,
    CHECKPOINTS_DIR,
    CKPT_NAME_RE,
    CONFIG_FILE,
    CheckpointError,
    NoValidCheckpoint,
)


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


def what_exists(run_dir: str | os.PathLike[str], limit: int = 4) -> str:
    """What a checkpoint argument could have named, for a message: the live branch's
    complete checkpoints (newest first, a few) and the names ``latest`` / ``best``."""
    rd = Path(run_dir)
    infos = [i for i in list_checkpoints(rd) if i.complete]
    names = ["latest"] + (["best"] if ledger_spec(infos) is not None else [])
    if not infos:
        return f"{rd} has no checkpoints yet"
    newest = [i.path.name for i in reversed(infos)]
    shown = ", ".join(newest[:limit]) + (
        f" (+{len(newest) - limit} more)" if len(newest) > limit else ""
    )
    return f"{rd / CHECKPOINTS_DIR} holds {shown}; or name {' or '.join(names)}"


IMPORT_HINT = (
    "a reference HiFi-GAN checkpoint (g_XXXXXXXX, with do_XXXXXXXX) is imported into a run "
    "first: nal-train import --format hifigan --config config.json --run-dir logs/NAME "
    "g_XXXXXXXX, then --init-from logs/NAME/checkpoints/ckpt_<step>.pt"
)


def init_source_refusal(path: str | os.PathLike[str]) -> str | None:
    """Why ``--init-from path`` cannot be a source, before any run directory is made (None:
    it names a complete nal-train checkpoint; the full load test follows in the trainer)."""
    p = Path(path).expanduser()
    if not p.exists():
        return f"--init-from {p}: no such file"
    if CKPT_NAME_RE.match(p.name) is None:
        return (
            f"--init-from {p}: not a nal-train checkpoint; it takes a run's ckpt_<step>.pt "
            f"(its .json manifest beside it); {IMPORT_HINT}"
        )
    info = checkpoint_info(p)
    if not info.complete:
        return f"--init-from {p}: {info.reason}"
    return None


def find_resume_checkpoint(
    run_dir: str | os.PathLike[str],
    which: str | os.PathLike[str] = "latest",
    verify: Verifier = verify_checkpoint,
    action: str = "resume from",
) -> tuple[CheckpointInfo, list[tuple[CheckpointInfo, str]]]:
    """The checkpoint ``which`` names and the better candidates skipped (with reasons).

    ``which`` is "latest" (see latest_checkpoint), "best" (best_checkpoint: better-ranked
    ones that fail are skipped) or a path (see checkpoint_path_arg), which must pass
    ``verify``. Raises NoValidCheckpoint with a message naming what is wrong (``action``:
    what the caller does with it, "resume from" or "load"); a path that names no checkpoint
    lists the run's checkpoints.
    """
    which_s = os.fspath(which)
    ckdir = Path(run_dir) / CHECKPOINTS_DIR
    if which_s == "latest":
        info, skipped = latest_checkpoint(run_dir, verify)
        if info is not None:
            return info, skipped
        if not skipped:
            raise NoValidCheckpoint(f"no checkpoints in {ckdir}; nothing to {action}")
        raise NoValidCheckpoint(f"no usable checkpoint in {ckdir} ({describe_skipped(skipped)})")
    if which_s == "best":
        info, skipped = best_checkpoint(run_dir, verify)
        assert info is not None or skipped  # best_checkpoint raises when nothing is ranked
        if info is not None:
            return info, skipped
        raise NoValidCheckpoint(
            f"no usable best checkpoint in {ckdir} ({describe_skipped(skipped)})"
        )
    path = checkpoint_path_arg(run_dir, which_s)
    try:
        info = checkpoint_info(path)
    except CheckpointError as e:
        raise NoValidCheckpoint(f"cannot {action} {e}; {what_exists(run_dir)}") from None
    ok, reason = _check(info, verify)
    if not ok:
        listed = "" if info.path.exists() else f"; {what_exists(run_dir)}"
        raise NoValidCheckpoint(f"cannot {action} {info.path}: {reason}{listed}")
    return info, []


def resolve_checkpoint(
    run_dir: str | os.PathLike[str],
    which: str | os.PathLike[str],
    verify: Verifier = verify_checkpoint,
    action: str = "resume from",
) -> CheckpointInfo:
    """``latest``, ``best`` or a path, checked with ``verify`` (see find_resume_checkpoint)."""
    return find_resume_checkpoint(run_dir, which, verify, action)[0]


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


def run_dir_of(checkpoint: str | os.PathLike[str], require_config: bool = True) -> Path | None:
    """The run directory holding ``checkpoint`` (``<run>/checkpoints/ckpt_*.pt``, or an
    abandoned branch's ``<run>/checkpoints/abandoned/<dir>/ckpt_*.pt``), if it is one
    (with its resolved ``config.yaml`` unless ``require_config`` is False)."""
    p = Path(checkpoint).expanduser().resolve()
    ck = p.parent
    if ck.parent.name == ABANDONED_DIR and ck.parent.parent.name == CHECKPOINTS_DIR:
        ck = ck.parent.parent
    run = ck.parent
    if ck.name == CHECKPOINTS_DIR and (not require_config or (run / CONFIG_FILE).is_file()):
        return run
    return None
