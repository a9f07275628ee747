"""The branch rule of docs/events.md ("Branches") as the dashboard applies it (mixed into
``RunState``: ``self`` is the state): a ``run_start`` below the last step seen drops the
abandoned steps from the live view; one that resumes an abandoned branch's checkpoint above
it drops the live branch whose checkpoints were moved aside."""

from __future__ import annotations

import re
from typing import Any

from trainer.events import schema as ev
from trainer.events.schema import ALERT_BRANCH

from ..text import clean
from ..vocab import LEVEL_INFO


class BranchRule:
    """``_branch_rule(rec, start)`` at each run_start, before the state moves to ``start``."""

    def _branch_rule(self, rec: dict[str, Any], start: int) -> None:
        p = self.progress
        last = max(x for x in (p.step, p.max_step, 0) if x is not None)
        aside_from = _aside_from(rec.get("moved_aside"))
        if start < last:
            self._abandon(start, last, rec, float(rec[ev.K_TIME]))
        elif start > last and aside_from is not None and aside_from <= last:
            # An abandoned branch's checkpoint resumed above the live view: the live
            # checkpoints from ``aside_from`` on were moved aside. Their common ancestor is at
            # most where the live branch began (the usual case: the resumed checkpoint is
            # of the branch it left), so the view keeps the steps up to there.
            keep = min(self.branch_start, aside_from - 1)
            self._abandon(keep, last, rec, float(rec[ev.K_TIME]), resumed=start)
        elif start > 0 or (p.step is not None and start <= p.step):
            self._mark_resume(start)
        branch = rec.get("branch")
        if branch != self.branch or start < last:
            self.branch, self.branch_start = branch, start

    def _abandon(
        self, start: int, last: int, rec: dict[str, Any], t: float, resumed: int | None = None
    ) -> None:
        """A run_start below the last step: the steps after ``start`` belong to an abandoned
        branch (or were lost in a crash) and leave the live view; ``start`` 0 starts over.
        ``resumed``: the step of an abandoned branch's checkpoint resumed above the view."""
        p = self.progress
        p.truncate(start)
        for tr in self.losses.values():
            tr.truncate(start)
        kept = [v for v in self.vals if v.step <= start]
        self.vals.clear()
        self.vals.extend(kept)
        ck = [c for c in self.checkpoint_events if c.get("step", 0) <= start]
        self.checkpoint_events.clear()
        self.checkpoint_events.extend(ck)
        self.resume_steps = [s for s in self.resume_steps if s < start]
        self.best_steps = frozenset(s for s in self.best_steps if s <= start)
        if start > 0:
            self._mark_resume(start)
        if resumed is not None:
            self._mark_resume(resumed)
        self.nonfinite.open = False
        self.collapse.summary()
        self.imbalance.reset_window()
        if start == 0:
            self.imbalance.ref = None
        aside = clean(rec.get("moved_aside") or "", 200)
        self.abandoned.append((start, last, aside))
        where = f"; its checkpoints were moved aside to {aside}/ (nothing deleted)" if aside else ""
        what = (
            f"resumed an abandoned branch at step {resumed:,}: steps {start + 1:,}–{last:,} "
            f"are no longer shown, nor the resumed branch's steps before {resumed:,}"
            if resumed is not None
            else f"a new branch from step 0: the previous {last:,} steps are no longer shown"
            if start == 0
            else f"resumed from step {start:,}: steps {start + 1:,}–{last:,} (an abandoned branch) "
            "are no longer shown"
        )
        self._alert(ALERT_BRANCH, LEVEL_INFO, start, what + where, t)

    def _mark_resume(self, step: int) -> None:
        if not self.resume_steps or self.resume_steps[-1] != step:
            self.resume_steps.append(step)
            del self.resume_steps[:-256]


_ASIDE_STEPS = re.compile(r"_steps?-(\d+)(?:-\d+)?(?:_\d+)?/?$")


def _aside_from(moved_aside: Any) -> int | None:
    """The lowest step moved aside by a run_start, from its ``moved_aside`` directory name
    (``checkpoints/abandoned/<time>_steps-A-B`` or ``..._step-A``, maybe with a ``_2``
    suffix: trainer.lineage), or None."""
    m = _ASIDE_STEPS.search(moved_aside) if isinstance(moved_aside, str) else None
    return int(m.group(1)) if m else None
