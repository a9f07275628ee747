"""The best-checkpoint ledger's decisions at each validation (torch-free).

What is *in* the ledger is always read from the manifests on disk
(:func:`trainer.rundir.best_checkpoints`), never kept in memory: it survives resumes,
branches and crashes. This module decides, for one validation score, whether it enters the
best ``keep`` (then the trainer checkpoints those weights at once), whether it is a new best,
and when the over-training alert fires (``patience`` validations in a row without a new
best). The streak is carried across a resume by the manifest's ledger note.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainer.config.schema import BestConfig
from trainer.rundir.checkpoints import CheckpointInfo, Verifier
from trainer.rundir.manifest import BestRecord
from trainer.rundir.resolve import best_checkpoints, better


@dataclass(frozen=True)
class Verdict:
    """One validation judged against the ledger on disk."""

    step: int
    score: float | None  # None: the metric was not finite (or not computed)
    enters: bool  # among the best ``keep``: these weights must be checkpointed
    new_best: bool
    since_best: int  # validations in a row without a new best, this one included
    best: CheckpointInfo | None  # the ledger's best before this validation
    alert: str | None  # the over-training alert's message, when it fires now


class BestTracker:
    """Judges validation scores for ``checkpoint.best`` in ``run_dir``."""

    def __init__(
        self, spec: BestConfig, run_dir: str | os.PathLike[str], verify: Verifier | None = None
    ) -> None:
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.verify = verify
        self.since_best = 0

    def restore(self, info: CheckpointInfo | None) -> None:
        """Carry on the streak of the checkpoint this process starts from (0 without one)."""
        note = info.best if info is not None else None
        same = note is not None and note.metric == self.spec.metric
        self.since_best = note.since_best if same and note is not None else 0

    def ledger(self) -> list[CheckpointInfo]:
        """The live branch's best ``keep`` validated checkpoints, best first (from disk)."""
        return best_checkpoints(self.run_dir, self.spec.metric, self.spec.keep, self.verify)

    def judge(self, step: int, metrics: Mapping[str, float]) -> Verdict:
        metric, keep = self.spec.metric, self.spec.keep
        raw = metrics.get(metric)
        score = float(raw) if raw is not None and math.isfinite(raw) else None
        ledger = [i for i in self.ledger() if i.step != step]
        best = ledger[0] if ledger else None
        enters = new_best = False
        if score is not None:
            worst = ledger[-1].score(metric) if ledger else None
            enters = len(ledger) < keep or (worst is not None and better(metric, score, worst))
            top = best.score(metric) if best is not None else None
            new_best = top is None or better(metric, score, top)
        self.since_best = 0 if new_best else self.since_best + 1
        alert = None
        n, patience = self.since_best, self.spec.patience
        if patience and n and n % patience == 0 and best is not None:
            now = f"{score:.4g}" if score is not None else "not finite"
            alert = (
                f"{metric} has not improved for {n} validations in a row (now {now}); the "
                f"best is {best.score(metric):.4g} at step {best.step} ({best.path.name}): "
                f"consider stopping, or continue from it with --resume best"
            )
        return Verdict(step, score, enters, new_best, self.since_best, best, alert)

    def note(self, verdict: Verdict | None) -> BestRecord:
        """The ledger note for the manifest of a checkpoint saved now (``verdict``: this
        step's validation, or None when the step was not validated)."""
        ledger = self.ledger()
        if verdict is not None and verdict.new_best:
            best_step: int | None = verdict.step
        else:
            best_step = ledger[0].step if ledger else None
        return BestRecord(
            metric=self.spec.metric,
            keep=self.spec.keep,
            score=verdict.score if verdict is not None else None,
            among=verdict.enters if verdict is not None else False,
            since_best=self.since_best,
            best_step=best_step,
        )
