"""The branch rule of docs/events.md ("Branches") as the dashboard applies it.

A ``run_start`` below the last step seen drops the abandoned steps from the live view; one
that resumes an abandoned branch's checkpoint above it drops the live branch whose
checkpoints were moved aside. ``Branches`` decides; ``RunState`` drops the steps.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from nal_tui.core.text import clean

KEEP_BRANCHES = 64  # abandoned branches remembered
KEEP_RESUMES = 256  # resume markers kept for the charts


@dataclass(frozen=True)
class Abandon:
    """The steps after ``keep`` up to ``last`` leave the live view; ``resumed``: the step of
    an abandoned branch's checkpoint resumed above the view; ``aside``: where its
    checkpoints were moved ("" when not said)."""

    keep: int
    last: int
    aside: str
    resumed: int | None = None

    def message(self) -> str:
        """The branch alert's text."""
        keep, last, resumed = self.keep, self.last, self.resumed
        where = (
            f"; its checkpoints were moved aside to {self.aside}/ (nothing deleted)"
            if self.aside
            else ""
        )
        what = (
            f"resumed an abandoned branch at step {resumed:,}: steps {keep + 1:,}–{last:,} "
            f"are no longer shown, nor the resumed branch's steps before {resumed:,}"
            if resumed is not None
            else f"a new branch from step 0: the previous {last:,} steps are no longer shown"
            if keep == 0
            else f"resumed from step {keep:,}: steps {keep + 1:,}–{last:,} (an abandoned branch) "
            "are no longer shown"
        )
        return what + where


class Branches:
    """The live branch, where the run resumed (chart markers), the branches left behind."""

    def __init__(self) -> None:
        self.resume_steps: list[int] = []
        # Branches left behind by a run_start below the last step (docs/events.md
        # "Branches"): (resumed at step, last step dropped, moved_aside dir or "").
        self.abandoned: deque[tuple[int, int, str]] = deque(maxlen=KEEP_BRANCHES)
        # The live branch (run_start ``branch``) and the step it started from.
        self.branch: str | None = None
        self.branch_start = 0

    def mark_resume(self, step: int) -> None:
        if not self.resume_steps or self.resume_steps[-1] != step:
            self.resume_steps.append(step)
            del self.resume_steps[:-KEEP_RESUMES]

    def at_run_start(
        self, rec: dict[str, Any], start: int, step: int | None, max_step: int | None
    ) -> Abandon | None:
        """Apply the rule to a run_start at ``start`` (the view was at ``step``, at most
        ``max_step``); returns the steps the view must drop, if any."""
        last = max(x for x in (step, max_step, 0) if x is not None)
        aside_from = _aside_from(rec.get("moved_aside"))
        aside = clean(rec.get("moved_aside") or "", 200)
        drop: Abandon | None = None
        if start < last:
            drop = Abandon(start, last, aside)
        elif start > last and aside_from is not None and aside_from <= last:
            # An abandoned branch's checkpoint resumed above the live view: the live
            # checkpoints from ``aside_from`` on were moved aside. Their common ancestor is at
            # most where the live branch began (the usual case: the resumed checkpoint is
            # of the branch it left), so the view keeps the steps up to there.
            drop = Abandon(min(self.branch_start, aside_from - 1), last, aside, resumed=start)
        elif start > 0 or (step is not None and start <= step):
            self.mark_resume(start)
        if drop is not None:
            self.resume_steps = [s for s in self.resume_steps if s < drop.keep]
            if drop.keep > 0:
                self.mark_resume(drop.keep)
            if drop.resumed is not None:
                self.mark_resume(drop.resumed)
            self.abandoned.append((drop.keep, last, aside))
        branch = rec.get("branch")
        if branch != self.branch or start < last:
            self.branch, self.branch_start = branch, start
        return drop


_ASIDE_STEPS = re.compile(r"_steps?-(\d+)(?:-\d+)?(?:_\d+)?/?$")


def _aside_from(moved_aside: Any) -> int | None:
    """The lowest step moved aside by a run_start, from its ``moved_aside`` directory name
    (``checkpoints/abandoned/<time>_steps-A-B`` or ``..._step-A``, maybe with a ``_2``
    suffix: trainer.checkpointing.lineage), or None."""
    m = _ASIDE_STEPS.search(moved_aside) if isinstance(moved_aside, str) else None
    return int(m.group(1)) if m else None
