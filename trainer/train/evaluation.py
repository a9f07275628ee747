"""The trainer's validation at a step: the passes (trainer.train.validation; the unseen set
first), their ``val`` records and log lines, the alert for a metric whose package is
missing, the best-K ledger's verdict and its overtraining alert. It keeps the last
validation for the manifest of a checkpoint saved at that step.

A part the Trainer keeps; it holds no reference to the Trainer (see trainer.train.startup).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from torch import nn

from trainer.data import ValidationSet
from trainer.events import schema as ev
from trainer.train import metrics as metrics_mod
from trainer.train.ledger import BestTracker, Verdict
from trainer.train.runlog import EventLog
from trainer.train.validation import SetResult, Validator

log = logging.getLogger("nal-train")


def _finite(d: dict[str, float]) -> dict[str, float]:
    """The finite entries (a manifest records numbers only)."""
    return {k: float(v) for k, v in d.items() if math.isfinite(v)}


def _json_floats(d: dict[str, float]) -> dict[str, Any]:
    """Non-finite values as the strings events.float_field maps back (JSON has no NaN)."""
    return {k: (v if math.isfinite(v) else str(v).lower()) for k, v in d.items()}


class Evaluation:
    """Validates the generator on the run's sets and reports it."""

    def __init__(
        self,
        validator: Validator,
        val_set: ValidationSet,
        unseen_set: ValidationSet | None,
        best: BestTracker | None,
        events: EventLog,
        every: int,
    ) -> None:
        self.every = every  # log.val_every
        self.validator = validator
        self.val_set = val_set
        self.unseen_set = unseen_set
        self.best = best  # the best-checkpoint ledger's judge (None: no ledger)
        self.events = events
        # The last validation: its step, its metrics by set, the ledger's verdict on it.
        self.last_step = -1
        self.last: dict[str, dict[str, float]] = {}
        self.verdict: Verdict | None = None
        self._metric_notes: set[str] = set()

    def should_validate(self, step: int) -> bool:
        return step % self.every == 0

    def run(self, g: nn.Module, step: int) -> Verdict | None:
        """Validate ``g`` on the unseen set (if any), then the validation set.

        The unseen set's ``val`` event comes first, so a reader that keeps only the latest
        record per step shows the validation set's. Returns the ledger's verdict on the
        validation set's score (None without ``checkpoint.best``).
        """
        g.eval()
        try:
            results = []
            if self.unseen_set is not None:
                results.append(self.validator.run(g, self.unseen_set, step, ev.UNSEEN_SET))
            results.append(self.validator.run(g, self.val_set, step, ev.VAL_SET))
        finally:
            g.train()
        self._note_skipped_metrics(step)
        self.last_step = step
        self.last = {r.set_name: _finite(r.metrics) for r in results}
        for r in results:
            self._emit_val(r)
        self.verdict = None
        if self.best is not None:
            self.verdict = self.best.judge(step, results[-1].metrics)
            if self.verdict.alert:
                log.warning("overtraining: %s", self.verdict.alert)
                self.events.emit(
                    ev.Alert(kind=ev.ALERT_OVERTRAINING, step=step, message=self.verdict.alert)
                )
        return self.verdict

    def at(self, step: int) -> tuple[dict[str, dict[str, float]] | None, Verdict | None]:
        """The validation made at ``step`` (its metrics by set, the verdict) for the manifest
        of a checkpoint saved now; (None, None) when ``step`` was not validated."""
        if self.last_step != step:
            return None, None
        return (self.last or None), self.verdict

    def _emit_val(self, r: SetResult) -> None:
        self.events.emit(
            ev.Val(
                step=r.step,
                losses=_json_floats(r.losses),
                samples=r.samples,
                duration=r.duration,
                metrics=_json_floats(r.metrics),
                set=r.set_name,
                utterances=r.utterances,
                pictures=r.pictures,
            )
        )
        shown = "  ".join(f"{k} {v:.4g}" for k, v in r.metrics.items())
        log.info(
            "step %d validation (%s, %d utterances, %.2f s): %s",
            r.step,
            r.set_name,
            r.utterances,
            r.duration,
            shown or f"mel L1 {r.losses[metrics_mod.MEL_L1]:.4f}",
        )

    def _note_skipped_metrics(self, step: int) -> None:
        """A metric whose package is missing: one alert per process (the log says it too)."""
        for metric, why in self.validator.skipped.items():
            if metric not in self._metric_notes:
                self._metric_notes.add(metric)
                self.events.emit(ev.Alert(kind=ev.ALERT_METRIC_UNAVAILABLE, step=step, message=why))
