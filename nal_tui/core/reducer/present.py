"""The typed views the panels draw, as pure functions of a ``RunState``.

Reading only: nothing here changes the state.
"""

from __future__ import annotations

from nal_tui.core.reducer.state import RunState
from nal_tui.core.reducer.views import (
    AlertsView,
    CheckpointRow,
    HeaderView,
    LossesView,
    LossRowView,
    MilestoneRow,
    MilestonesView,
    ProgressView,
)
from nal_tui.core.vocab import ACTIVE_STATUSES, LOSS_KEYS, PID_LIVE, PID_NONE, STATUS_STALE

LOSS_LABELS = {
    "g": "G total",
    "d": "D total",
    "stft": "recon",
    "adv": "adversarial",
    "fm": "feat. match",
    "lr_g": "lr G",
    "lr_d": "lr D",
    "grad_norm_g": "grad norm G",
    "grad_norm_d": "grad norm D",
}


def loss_label(key: str, recon_name: str | None = None) -> str:
    if key == "stft" and recon_name:
        return f"recon ({recon_name})"
    return LOSS_LABELS.get(key, key)


def table_rows(st: RunState, rows: list[CheckpointRow]) -> list[CheckpointRow]:
    """The checkpoint table's rows (from the disk) with the live branch's best marked."""
    return st.checkpoints.mark_best(rows)


def header_view(st: RunState, now: float) -> HeaderView:
    pid = st.proc_pid if st.pid_state == PID_LIVE else None
    if pid is None and st.active and st.pid_state == PID_NONE:
        pid = st.pid
    return HeaderView(
        st.run_name,
        st.status,
        st.status_reason,
        pid if st.active else None,
        st.since_last_event(now),
        st.progress.step,
        st.progress.target_step,
        st.device,
        st.world_size or 1,
    )


def progress_view(st: RunState) -> ProgressView:
    p = st.progress
    live = st.status in ACTIVE_STATUSES | {STATUS_STALE}
    nxt, nxt_eta = p.next_checkpoint() if live else (None, None)
    rate = p.steps_per_s
    if rate is not None and st.batch_size > 0:
        # What the screen multiplies out: steps/s x batch per rank x ranks.
        samples_s: float | None = rate * st.batch_size * max(1, st.world_size or 1)
    else:  # no run_start yet: the trainer's own figure
        samples = [v for v in p.samples_s if v == v]
        samples_s = sorted(samples)[len(samples) // 2] if samples else None
    return ProgressView(
        p.step,
        p.target_step,
        p.fraction,
        p.epoch,
        rate,
        samples_s,
        p.eta_s() if live else None,
        nxt,
        nxt_eta,
        not live and st.records > 0,
        p.eta_range_s() if live else None,
    )


def losses_view(st: RunState, keys: tuple[str, ...] = LOSS_KEYS) -> LossesView:
    """The rows of ``keys``: the losses, or the optimiser's series (``OPT_KEYS``)."""
    tracks = [(k, st.track(k)) for k in keys]
    rows = tuple(
        LossRowView(
            k,
            loss_label(k, st.recon_name),
            tr.current,
            tr.moving_avg if tr.current is not None else None,
            tr.trend_pct,
            tr.trend_dir,
            tr.series,
        )
        for k, tr in tracks
        if tr is not None
    )
    return LossesView(rows, st.recon_name, tuple(st.branches.resume_steps), st.version)


def milestones_view(st: RunState) -> MilestonesView:
    rows, pending = st.progress.milestone_rows()
    live = st.status in ACTIVE_STATUSES
    return MilestonesView(
        tuple(MilestoneRow(s, t, n) for s, t, n in rows),
        pending,
        st.progress.next_milestone_eta() if live else None,
    )


def alerts_view(st: RunState) -> AlertsView:
    return AlertsView(tuple(st.alerts.rows), st.alerts.dropped, st.garbled, st.garbled_sample)
