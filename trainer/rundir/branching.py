"""What a start from a checkpoint does to the run's branches: the plan (which live
checkpoints move aside, which abandoned ones come back). Torch-free, so the dashboard's
resume dialog names exactly what the trainer will move; :mod:`trainer.checkpointing.lineage`
carries the plan out.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.rundir.checkpoints import CheckpointInfo, list_abandoned, list_checkpoints
from trainer.rundir.manifest import ParentRef


def new_branch_id() -> str:
    """A fresh, sortable, human-readable branch id, e.g. ``20261130-101500-3fa2``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class BranchPlan:
    """What starting from ``start`` does to the run directory (see :func:`plan_start`)."""

    start: CheckpointInfo | None  # the checkpoint to start from; None for step 0
    abandon: tuple[CheckpointInfo, ...]  # live checkpoints to move aside
    restore: tuple[CheckpointInfo, ...]  # abandoned checkpoints to bring back (start, ancestors)
    branch: str  # the branch id the new checkpoints will carry
    parent: ParentRef | None  # the checkpoint that branch started from
    new_branch: bool


def _ancestry(run_dir: Path, info: CheckpointInfo) -> list[tuple[str | None, int]]:
    """(branch, last step) segments of ``info``'s chain, itself first, from the manifests."""
    chain: list[tuple[str | None, int]] = [(info.branch, info.step)]
    parent, seen = info.parent, {info.branch}
    known: list[CheckpointInfo] | None = None
    while parent is not None and len(chain) < 1000:
        chain.append((parent.branch, parent.step))
        if parent.branch is None or parent.branch in seen:
            break
        seen.add(parent.branch)
        if known is None:
            known = list_checkpoints(run_dir) + list_abandoned(run_dir)
        pb = parent.branch
        parent = next((c.parent for c in known if c.branch == pb and c.parent is not None), None)
    return chain


def _on_chain(info: CheckpointInfo, chain: Sequence[tuple[str | None, int]]) -> bool:
    return any(info.branch == b and info.step <= s for b, s in chain)


def plan_start(run_dir: str | os.PathLike[str], start: CheckpointInfo | None = None) -> BranchPlan:
    """How to start from ``start`` (None: from step 0, a new branch) keeping one live chain.

    - From a live checkpoint with nothing live after it: the same branch continues.
    - From a live checkpoint S with live checkpoints after S (complete or not): a new branch;
      those later ones are moved aside.
    - From an abandoned checkpoint: a new branch; live checkpoints that are not its ancestors
      are moved aside, and it (with its abandoned ancestors newer than the live ones) moves
      back into the live directory, so "latest" finds it even before the first new save.
    - From step 0: a new branch; every live checkpoint is moved aside.
    """
    rd = Path(run_dir)
    live = list_checkpoints(rd)
    if start is None:
        return BranchPlan(None, tuple(live), (), new_branch_id(), None, True)
    here = ParentRef(start.step, start.sha256, start.branch)
    if not start.abandoned:
        abandon = tuple(c for c in live if c.step > start.step)
        if not abandon and start.branch is not None:
            return BranchPlan(start, (), (), start.branch, start.parent, False)
        return BranchPlan(start, abandon, (), new_branch_id(), here, True)
    chain = _ancestry(rd, start)
    abandon = tuple(c for c in live if not _on_chain(c, chain) or c.step > start.step)
    top = max((c.step for c in live if c not in abandon), default=-1)
    restore: dict[int, CheckpointInfo] = {}
    for c in [start, *list_abandoned(rd)]:
        if c.complete and top < c.step <= start.step and _on_chain(c, chain):
            restore.setdefault(c.step, c)
    return BranchPlan(
        start, abandon, tuple(restore[s] for s in sorted(restore)), new_branch_id(), here, True
    )
