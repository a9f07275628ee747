"""The typed views ``RunState`` hands to the panels (mixed into it: ``self`` is the state).

Reading only: nothing here changes the state.
"""

from __future__ import annotations

from dataclasses import replace

from trainer.events import schema as ev

from ..views import (
    AlertsView,
    CheckpointRow,
    HeaderView,
    LossesView,
    LossRowView,
    MilestoneRow,
    MilestonesView,
    ProgressView,
    ValidationView,
)
from ..vocab import ACTIVE_STATUSES, PID_LIVE, PID_NONE, STATUS_STALE

LOSS_KEYS = ev.LOSS_KEYS
LOSS_LABELS = {
    "g": "G total",
    "d": "D total",
    "stft": "recon",
    "adv": "adversarial",
    "fm": "feat. match",
}


def loss_label(key: str, recon_name: str | None = None) -> str:
    if key == "stft" and recon_name:
        return f"recon ({recon_name})"
    return LOSS_LABELS.get(key, key)


class Presenter:
    """Derived values and views of a ``RunState``."""

    @property
    def step(self) -> int | None:
        return self.progress.step

    @property
    def target_step(self) -> int | None:
        return self.progress.target_step

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def val(self) -> ValidationView | None:
        """The newest validation of each set (val, unseen, ...) side by side."""
        from .summary import merge_sets

        return merge_sets(list(self.vals)[-16:]) if self.vals else None

    def table_rows(self, rows: list[CheckpointRow]) -> list[CheckpointRow]:
        """The checkpoint table's rows (from the disk) with the live branch's best marked."""
        best = self.best_steps
        if not best:
            return rows
        return [
            replace(r, best=True) if r.step in best and not r.abandoned and not r.best else r
            for r in rows
        ]

    def since_last_event(self, now: float) -> float | None:
        return None if self.last_event_t is None else max(0.0, now - self.last_event_t)

    def header(self, now: float) -> HeaderView:
        pid = self._proc_pid if self.pid_state == PID_LIVE else None
        if pid is None and self.active and self.pid_state == PID_NONE:
            pid = self.pid
        return HeaderView(
            self.run_name,
            self.status,
            self.status_reason,
            pid if self.active else None,
            self.since_last_event(now),
            self.progress.step,
            self.progress.target_step,
            self.device,
            self.world_size or 1,
        )

    def progress_view(self) -> ProgressView:
        p = self.progress
        live = self.status in ACTIVE_STATUSES | {STATUS_STALE}
        nxt, nxt_eta = p.next_checkpoint() if live else (None, None)
        sps = p.seconds_per_step
        samples = [v for v in p.samples_s if v == v]
        return ProgressView(
            p.step,
            p.target_step,
            p.fraction,
            p.epoch,
            1.0 / sps if sps else None,
            sorted(samples)[len(samples) // 2] if samples else None,
            p.eta_s() if live else None,
            nxt,
            nxt_eta,
            not live and self.records > 0,
        )

    def losses_view(self) -> LossesView:
        rows = tuple(
            LossRowView(
                k,
                loss_label(k, self.recon_name),
                tr.current,
                tr.moving_avg if tr.current is not None else None,
                tr.trend_pct,
                tr.trend_dir,
                tr.series,
            )
            for k, tr in self.losses.items()
        )
        return LossesView(rows, self.recon_name, tuple(self.resume_steps), self.version)

    def milestones_view(self) -> MilestonesView:
        rows, pending = self.progress.milestone_rows()
        live = self.status in ACTIVE_STATUSES
        return MilestonesView(
            tuple(MilestoneRow(s, t, n) for s, t, n in rows),
            pending,
            self.progress.next_milestone_eta() if live else None,
        )

    def alerts_view(self) -> AlertsView:
        return AlertsView(
            tuple(self.alerts.rows), self.alerts.dropped, self.garbled, self.garbled_sample
        )
