"""The non-finite policy: count consecutive non-finite steps on the device, say so when the
host looks, and end the run at the configured limit.

A non-finite step is already skipped by the train step (neither network nor optimizer
changes, see trainer.train.step); this part decides what the run does about a streak.
"""

from __future__ import annotations

import logging

import torch

from trainer.events import schema as ev
from trainer.train.runlog import EventLog

log = logging.getLogger("nal-train")


class NonFinitePolicy:
    """Consecutive non-finite steps, alerts, and the limit (``train.max_nonfinite_steps``)."""

    def __init__(self, limit: int, device: torch.device, events: EventLog) -> None:
        self.limit = limit
        self.events = events
        self.failure: str | None = None  # why the run must end (the limit was reached)
        self.last_streak = 0  # the streak at the last check
        self._streak = torch.zeros((), device=device)  # on the device: no sync per step

    def observe(self, bad: torch.Tensor) -> None:
        """Add one step's flag (1.0 when non-finite); a finite step ends the streak."""
        self._streak = (self._streak + bad) * bad

    def streak(self) -> int:
        """The current streak (a host sync)."""
        return int(self._streak.item())

    def check(self, step: int) -> str | None:
        """At a host sync: alert while a streak lasts; the reason to end the run once it
        reaches the limit (also kept in ``failure``), else None."""
        n = self.last_streak = self.streak()
        if n:
            self.events.emit(
                ev.Alert(
                    kind=ev.ALERT_NONFINITE,
                    step=step,
                    level="error",
                    message=f"non-finite loss or gradient: update skipped ({n} consecutive)",
                )
            )
        if n >= self.limit and self.failure is None:
            self.failure = f"{n} consecutive non-finite steps (limit {self.limit})"
            log.error(self.failure)
        return self.failure

    def reset(self) -> None:
        """Forget the streak and the failure (the run went back to a healthy checkpoint)."""
        self._streak = torch.zeros_like(self._streak)
        self.failure = None
        self.last_streak = 0
