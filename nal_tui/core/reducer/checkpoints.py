"""Checkpoint events as the live branch knows them: the recent ones and its best steps."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from nal_tui.core.reducer.views import CheckpointRow

KEEP_EVENTS = 64  # recent checkpoint events kept (the table lists the disk)
MAX_BEST = 64  # steps of a best-checkpoint ledger kept


class CheckpointLog:
    """Recent checkpoint events, and the live branch's best steps (the ledger of the newest
    event that carries one, else every event marked best)."""

    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=KEEP_EVENTS)
        self.best_steps: frozenset[int] = frozenset()

    def add(self, rec: dict[str, Any]) -> None:
        self.events.append(rec)
        ledger = rec.get("best_steps")
        if ledger:
            self.best_steps = frozenset(ledger[:MAX_BEST])
        elif rec.get("best") is True:
            self.best_steps = self.best_steps | {rec["step"]}

    def truncate(self, after: int) -> None:
        """Forget the checkpoints after step ``after`` (an abandoned branch)."""
        kept = [c for c in self.events if c.get("step", 0) <= after]
        self.events.clear()
        self.events.extend(kept)
        self.best_steps = frozenset(s for s in self.best_steps if s <= after)

    def mark_best(self, rows: list[CheckpointRow]) -> list[CheckpointRow]:
        """The checkpoint table's rows (from the disk) with the live branch's best marked."""
        best = self.best_steps
        if not best:
            return rows
        return [
            replace(r, best=True) if r.step in best and not r.abandoned and not r.best else r
            for r in rows
        ]
