"""The reducer's numbers checked against values computed by hand (ported from main's
test_state): rates, ETA, averages, trends, milestones, alert rules, status transitions."""

from __future__ import annotations

import math

import pytest

from nal_tui.core import vocab as V
from nal_tui.core.control.status import StatusInputs, derive_status
from nal_tui.core.reducer.present import (
    alerts_view,
    header_view,
    losses_view,
    milestones_view,
    progress_view,
)
from nal_tui.core.reducer.state import RunState
from tests.factory import T0, checkpoint_record, record, run_end, run_start, step_event
from trainer.events import schema as ev


def start(t=T0, start_step=0, target=1000, **kw) -> dict:
    kw.setdefault("pid", 4242)
    kw.setdefault("checkpoint_every", 200)
    kw.setdefault("milestone_every", 0)
    return record(run_start(start_step, target, **kw), t)


def step(n, t, g=10.0, d=3.0, stft=1.0, adv=2.0, fm=4.0, sps=80.0) -> dict:
    return record(
        step_event(n, g=g, d=d, stft=stft, adv=adv, fm=fm, samples_per_s=sps, step_time=0.4), t
    )


def steps(first, last, t0, dt=0.5, every=1, **kw) -> list[dict]:
    return [step(n, t0 + (n - first) * dt, **kw) for n in range(first, last + 1, every)]


def end(n, t, status=ev.STATUS_COMPLETED, code=0) -> dict:
    return record(run_end(n, status, code), t)


def kinds(s: RunState, kind: str | None = None) -> list:
    return [a for a in s.alerts.rows if kind is None or a.kind == kind]


def test_empty_state():
    s = RunState()
    p = progress_view(s)
    assert s.status == V.STATUS_NOT_STARTED
    assert s.step is None and p.eta_s is None and p.progress == 0.0
    assert s.losses["g"].current is None and s.losses["g"].moving_avg is None
    assert s.losses["g"].series.buckets(10) == ([], [], [], [])


def test_progress_rates_eta_and_next_checkpoint():
    s = RunState()
    v0 = s.version
    recs = [start()] + steps(1, 50, T0 + 1)
    # A 100 s validation pause between step 50 and 51 must not slow the rate down.
    recs.append(
        record(
            ev.Val(step=50, losses={"stft": 0.9}, samples=["a.wav"], duration=100.0),
            T0 + 1 + 49 * 0.5 + 100,
        )
    )
    recs += steps(51, 150, T0 + 1 + 49 * 0.5 + 100.5, sps=64.0)
    s.feed(recs)
    p = progress_view(s)
    assert s.version > v0
    assert s.status == V.STATUS_RUNNING
    assert (p.step, p.target_step, p.progress) == (150, 1000, 0.15)
    assert s.progress.seconds_per_step == pytest.approx(0.5)
    assert p.steps_per_s == pytest.approx(2.0)
    assert p.samples_per_s == pytest.approx(64.0)
    # The steps left at the rate, plus the 9 validations ahead (val_every 100: 200..1000) at
    # the 100 s the last one took.
    assert p.eta_s == pytest.approx(850 * 0.5 + 9 * 100.0)
    assert p.next_checkpoint_step == 200
    assert p.next_checkpoint_eta_s == pytest.approx(25.0)
    assert s.val.step == 50 and s.val.losses == (("stft", 0.9),) and s.val.samples == ("a.wav",)
    h = header_view(s, T0 + 200)
    assert (h.run_name, s.run_id, s.pid, h.device, s.recon_name) == (
        "demo", "r1", 4242, "cpu", "mrstft",
    )  # fmt: skip


def test_rate_with_sparse_step_events():
    s = RunState()
    # log_every 10: one event every 10 steps, 4 s apart -> 0.4 s/step.
    s.feed([start()] + steps(10, 400, T0, dt=0.4, every=10))
    assert s.progress.seconds_per_step == pytest.approx(0.4)
    assert progress_view(s).eta_s == pytest.approx(600 * 0.4)


def test_moving_average_and_trend():
    s = RunState()
    s.feed([start()] + [step(n, T0 + n, g=float(n)) for n in range(1, 151)])
    g = s.losses["g"]
    assert g.current == 150.0
    assert g.moving_avg == pytest.approx(100.5)  # mean of 51..150
    # Older half 51..100 (mean 75.5), newer half 101..150 (mean 125.5).
    assert g.trend_pct == pytest.approx(50 / 75.5 * 100)
    assert g.trend_dir == 1
    d = s.losses["d"]
    assert d.trend_pct == pytest.approx(0.0) and d.trend_dir == 0
    row = losses_view(s).rows[0]
    assert (row.current, row.avg, row.trend_dir) == (150.0, pytest.approx(100.5), 1)


def test_one_by_one_equals_one_batch():
    recs = [start(checkpoint_every=50, milestone_every=40)]
    for n in range(1, 401):
        d = 0.001 if 200 <= n < 280 else 3.0
        g = math.nan if n in (77, 78, 301) else 10.0 + n % 7
        recs.append(step(n, T0 + n * 0.5, g=g, d=d))
        if n % 50 == 0:
            recs.append(
                record(ev.Checkpoint(step=n, path=f"c{n}.pt", bytes=1, sha256="0"), T0 + n * 0.5)
            )
    a, b = RunState(), RunState()
    a.feed(recs)
    for r in recs:
        b.feed([r])
    for s in (a, b):
        assert s.step == 400
    assert [(x.kind, x.step) for x in kinds(a)] == [(x.kind, x.step) for x in kinds(b)]
    assert progress_view(a).eta_s == pytest.approx(progress_view(b).eta_s)
    assert a.losses["g"].moving_avg == pytest.approx(b.losses["g"].moving_avg)
    assert milestones_view(a) == milestones_view(b)
    assert a.losses["d"].series.buckets(40) == b.losses["d"].series.buckets(40)


def test_nonfinite_alert_once_per_episode_and_nan_visible():
    s = RunState()
    recs = [start()] + steps(1, 10, T0)
    recs += [step(11, T0 + 6, g=math.nan), step(12, T0 + 7, g=math.inf, d=math.nan)]
    recs += steps(13, 20, T0 + 8)
    recs += [step(21, T0 + 20, fm=-math.inf)]
    s.feed(recs)
    alerts = kinds(s, ev.ALERT_NONFINITE)
    assert [(a.step, a.level) for a in alerts] == [(11, "error"), (21, "error")]
    assert "g=nan" in alerts[0].message and "fm=-inf" in alerts[1].message
    assert s.losses["fm"].current == -math.inf
    assert s.losses["g"].moving_avg == pytest.approx(10.0)  # NaNs do not poison the average
    steps_, _mins, _maxs, mask = s.losses["g"].series.buckets(1000)
    assert [st for st, m in zip(steps_, mask, strict=True) if m] == [11, 12]


def test_trainer_alert_is_kept_and_not_duplicated():
    s = RunState()
    s.feed([start(), step(1, T0 + 1, g=math.nan)])
    s.feed(
        [
            record(
                ev.Alert(kind=ev.ALERT_NONFINITE, step=1, message="skipped", level="error"), T0 + 1
            )
        ]
    )
    s.feed(
        [record(ev.Alert(kind=ev.ALERT_CHECKPOINT_SKIPPED, step=1, message="disk full"), T0 + 2)]
    )
    assert [(a.kind, a.source) for a in kinds(s)] == [
        (ev.ALERT_NONFINITE, "dashboard"),
        (ev.ALERT_CHECKPOINT_SKIPPED, "trainer"),
    ]


def test_d_collapse_alert_once_per_episode():
    s = RunState()
    s.feed([start()] + steps(1, 100, T0))
    assert not kinds(s)
    s.feed(steps(101, 160, T0 + 60, d=0.001))
    assert [a.step for a in kinds(s, ev.ALERT_D_COLLAPSE)] == [150]  # the 50th collapsed value
    s.feed(steps(161, 200, T0 + 100, d=0.001))
    s.feed(steps(201, 210, T0 + 120, d=3.0))
    s.feed(steps(211, 260, T0 + 130, d=0.0))
    assert [a.step for a in kinds(s, ev.ALERT_D_COLLAPSE)] == [150, 260]


def test_gd_imbalance_alert():
    # Windows are aligned to 256 steps: the first sets the reference ratio adv/D = 1.
    s = RunState(imbalance_factor=4.0)
    s.feed([start()] + steps(1, 255, T0, adv=2.0, d=2.0))
    s.feed(steps(256, 1100, T0 + 200, adv=20.0, d=2.0))
    alerts = kinds(s, ev.ALERT_IMBALANCE)
    assert len(alerts) == 1  # one per episode
    assert "x10" in alerts[0].message and alerts[0].step == 511  # end of the 2nd window


def test_stalled_alert():
    s = RunState(stall_factor=20.0, stall_min_s=60.0)
    s.feed([start()] + steps(1, 50, T0, dt=1.0))
    last = s.last_event_t
    assert s.stall.limit(s.progress.usual_interval, s.progress.last_pause_s) == pytest.approx(60)
    s.set_pid_state(V.PID_LIVE, 4242, T0)
    s.refresh(last + 30)
    assert not kinds(s)
    s.refresh(last + 61)
    assert [a.kind for a in kinds(s)] == [ev.ALERT_STALLED]
    s.refresh(last + 120)
    assert len(kinds(s)) == 1  # once per silence
    s.feed(steps(51, 51, last + 121))
    assert s.since_last_event(last + 122) == pytest.approx(1.0)
    s.refresh(last + 122 + 61)
    assert len(kinds(s, ev.ALERT_STALLED)) == 2  # a new silence, a new alert


def test_crashed_when_process_gone_without_run_end():
    s = RunState()
    s.feed([start()] + steps(1, 5, T0))
    s.set_pid_state(V.PID_LIVE, 99, T0)
    assert s.status == V.STATUS_RUNNING and header_view(s, T0).pid == 99
    s.set_pid_state(V.PID_STALE)
    assert s.status == V.STATUS_CRASHED
    assert [a.kind for a in kinds(s)] == [ev.ALERT_CRASHED]
    assert progress_view(s).eta_s is None
    s.set_pid_state(V.PID_NONE)
    s.set_pid_state(V.PID_STALE)
    assert len(kinds(s)) == 1  # one alert per crash


def test_status_transitions():
    s = RunState(stale_after_s=300)
    assert s.status == V.STATUS_NOT_STARTED
    s.set_pid_state(V.PID_LIVE, 1, T0)
    assert s.status == V.STATUS_RUNNING  # process alive, no event yet
    s.feed([start()] + steps(1, 10, T0))
    assert s.status == V.STATUS_RUNNING
    s.set_stopping()
    assert s.status == V.STATUS_STOPPING
    s.feed([end(10, T0 + 10, ev.STATUS_STOPPED)])
    assert s.status == V.STATUS_STOPPED
    s.set_pid_state(V.PID_NONE)
    assert s.status == V.STATUS_STOPPED  # run_end decides; no crash alert
    s.feed([start(T0 + 100, start_step=10)] + steps(11, 20, T0 + 101))
    assert s.status == V.STATUS_RUNNING  # process unknown to us yet, log is fresh
    s.feed([end(1000, T0 + 200)])
    assert s.status == V.STATUS_COMPLETED and progress_view(s).eta_s is None
    assert not kinds(s, ev.ALERT_CRASHED)


def test_stale_when_process_unknown_and_log_old():
    s = RunState(stale_after_s=300)
    s.feed([start()] + steps(1, 10, T0))
    last = s.last_event_t
    s.refresh(last + 100)
    assert s.status == V.STATUS_RUNNING
    s.refresh(last + 301)
    assert s.status == V.STATUS_STALE
    s.feed(steps(11, 11, last + 302))
    s.refresh(last + 303)
    assert s.status == V.STATUS_RUNNING


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        (dict(end_status="completed", pid_state=V.PID_LIVE, pid_started=1.0), V.STATUS_COMPLETED),
        (dict(end_status="stopped", pid_state=V.PID_STALE), V.STATUS_STOPPED),
        (dict(end_status="failed", pid_state=V.PID_NONE), V.STATUS_CRASHED),
        (dict(pid_state=V.PID_LIVE, since_last_event=1e6), V.STATUS_RUNNING),
        (dict(pid_state=V.PID_LIVE, stopping=True), V.STATUS_STOPPING),
        (dict(pid_state=V.PID_STALE, since_last_event=1.0), V.STATUS_CRASHED),
        (dict(pid_state=V.PID_STALE, has_events=False), V.STATUS_CRASHED),
        (dict(pid_state=V.PID_GARBLED, since_last_event=1.0), V.STATUS_STALE),
        (dict(pid_state=V.PID_NONE, since_last_event=10.0), V.STATUS_RUNNING),
        (dict(pid_state=V.PID_NONE, since_last_event=None), V.STATUS_RUNNING),
        (dict(pid_state=V.PID_NONE, since_last_event=301.0), V.STATUS_STALE),
        (dict(pid_state=V.PID_NONE, has_events=False), V.STATUS_NOT_STARTED),
        # A live trainer that started after the last run_end: a new session, not logged yet.
        (dict(end_status="stopped", pid_state=V.PID_LIVE, pid_started=20.0), V.STATUS_RUNNING),
        (dict(end_status="stopped", pid_state=V.PID_LIVE, pid_started=5.0), V.STATUS_STOPPED),
    ],
)
def test_derive_status_rule(kw, status):
    args = dict(has_events=True, end_status=None, end_t=None, stale_after_s=300.0)
    args.update(kw)
    if args["end_status"] is not None:
        args["end_t"] = 10.0
    got, reason = derive_status(StatusInputs(**args))
    assert got == status and reason
    if kw["pid_state"] == V.PID_STALE and status == V.STATUS_CRASHED:
        assert "PID file is stale" in reason


def test_derive_status_rejects_unknown_pid_state():
    with pytest.raises(ValueError, match="pid_state"):
        derive_status(StatusInputs(True, None, None, "dead"))
    with pytest.raises(ValueError, match="pid_state"):
        RunState().set_pid_state("dead")


def test_garbled_pid_file_makes_a_run_stale_and_reason_is_kept():
    s = RunState()
    s.feed([start()] + steps(1, 5, T0))
    s.set_pid_state(V.PID_GARBLED)
    assert s.status == V.STATUS_STALE and "unreadable" in s.status_reason
    s.set_pid_state(V.PID_LIVE, 77, T0)
    assert s.status == V.STATUS_RUNNING and header_view(s, T0).pid == 77
    s.set_pid_state(V.PID_STALE)
    assert s.status == V.STATUS_CRASHED and "PID file is stale" in s.status_reason
    assert [a.message for a in kinds(s, ev.ALERT_CRASHED)] == [s.status_reason]


def test_failed_run_end_shows_crashed_with_reason():
    s = RunState()
    s.feed([start()] + steps(1, 3, T0) + [end(3, T0 + 5, ev.STATUS_FAILED, ev.EXIT_NONFINITE)])
    assert s.status == V.STATUS_CRASHED
    assert s.exit_code == ev.EXIT_NONFINITE and s.end_status == ev.STATUS_FAILED
    assert [a.kind for a in kinds(s)] == [ev.ALERT_RUN_FAILED]


def test_milestone_times():
    s = RunState(milestone_every=100)
    s.feed([start(target=300)] + steps(30, 150, T0, dt=3.0, every=30))
    rows = milestones_view(s).rows
    # Step 100 is first reached by the event for step 120 (log every 30 steps).
    assert [(r.step, r.t) for r in rows] == [(100, pytest.approx(T0 + 90 * 3.0)), (200, None)]
    assert milestones_view(s).pending == 1  # 300, the target
    s.feed(steps(180, 300, T0 + 500, dt=3.0, every=30))
    got = {r.step: r.t for r in milestones_view(s).rows}
    assert got[200] == pytest.approx(T0 + 500 + 30 * 3.0)  # step 210
    assert got[300] == pytest.approx(T0 + 500 + 120 * 3.0)  # step 300


def test_milestone_default_and_from_run_start():
    assert RunState().progress.milestone_every == 10_000
    s = RunState()
    s.feed([start(milestone_every=500, target=1000)])
    v = milestones_view(s)
    assert [r.step for r in v.rows] == [500] and v.pending == 1


def test_resume_below_the_last_step_drops_the_abandoned_branch():
    """docs/events.md "Branches": steps after the run_start's start_step leave the live view
    (charts, averages, validation, milestones); the branch is named in an alert."""
    s = RunState(milestone_every=100)
    val = record(ev.Val(step=450, losses={"mel_l1": 9.0}, samples=["a.wav"]), T0 + 300)
    ck = record(ev.Checkpoint(step=450, path="c.pt", bytes=1, sha256="-"), T0 + 301)
    s.feed([start()] + steps(1, 450, T0, g=1.0) + [val, ck])
    s.feed(steps(451, 500, T0 + 302, g=50.0))  # the diverging part, abandoned below
    assert s.progress.max_step == 500 and 500 in s.progress.reached
    moved = "checkpoints/abandoned/20261130-101500_steps-450-450"
    rs = start(T0 + 400, start_step=420, moved_aside=moved, branch="b2", parent_step=420)
    s.feed([rs])
    assert s.step == 420 and s.progress.max_step == 420
    assert 500 not in s.progress.reached and 400 in s.progress.reached
    assert s.losses["g"].moving_avg == 1.0  # the window kept only steps <= 420
    assert list(s.losses["g"].window_steps) == list(range(401, 421))
    assert s.losses["g"].series.last_step == 420
    assert max(s.losses["g"].series.buckets(50)[2]) == 1.0  # the 50.0 spike left the chart
    assert s.val is None and not s.checkpoints.events
    assert s.branches.resume_steps == [420] and losses_view(s).resume_steps == (420,)
    (branch,) = kinds(s, ev.ALERT_BRANCH)
    assert branch.level == V.LEVEL_INFO and branch.step == 420
    assert "421–500" in branch.message and moved in branch.message
    assert s.branches.abandoned[-1] == (420, 500, moved)
    s.feed(steps(421, 600, T0 + 401, g=2.0))
    st, mins, maxs, _ = s.losses["g"].series.buckets(600)
    assert len(s.losses["g"].series) == 600  # 1..420 and the new 421..600, once each
    assert [(mn, mx) for x, mn, mx in zip(st, mins, maxs, strict=True) if x > 420] == [
        (2.0, 2.0)
    ] * 180
    assert not kinds(s, ev.ALERT_BACKWARDS)  # a rollback with a run_start is not "backwards"
    assert progress_view(s).eta_s == pytest.approx(400 * 0.5)  # rates stay: same machine


def test_a_deep_rollback_empties_the_averages_until_new_steps_come():
    s = RunState(avg_window=8)
    s.feed([start()] + steps(1, 500, T0, g=1.0))
    s.feed([start(T0 + 400, start_step=100)])
    assert s.losses["g"].moving_avg is None and s.losses["g"].current is None
    s.feed(steps(101, 104, T0 + 401, g=3.0))
    assert s.losses["g"].moving_avg == 3.0


def test_a_new_branch_from_step_0_starts_over():
    s = RunState(milestone_every=100)
    s.feed([start()] + steps(1, 300, T0, g=7.0))
    s.feed([start(T0 + 500, start_step=0, moved_aside="checkpoints/abandoned/x_steps-100-300")])
    assert s.step == 0 and len(s.losses["g"].series) == 0 and s.losses["g"].current is None
    assert s.progress.reached == {} and s.branches.resume_steps == []
    assert "new branch from step 0" in kinds(s, ev.ALERT_BRANCH)[0].message
    s.feed(steps(1, 50, T0 + 501, g=3.0))
    assert s.step == 50 and s.losses["g"].series.buckets(10)[2] == [3.0] * 10


def test_resuming_an_abandoned_checkpoint_above_the_live_view_drops_the_live_branch():
    """Rolled back from 565 to a new branch from 0, trained to 50, then resumed the abandoned
    565: the trainer moved the 0-50 branch's checkpoints aside; they leave the view."""
    s = RunState(milestone_every=0)
    s.feed([start(branch="b1")] + steps(1, 565, T0, g=1.0))
    b2 = start(T0 + 600, start_step=0, branch="b2", moved_aside="c/abandoned/a_steps-50-565")
    s.feed([b2])
    val = record(ev.Val(step=50, losses={"mel_l1": 9.0}, samples=["a.wav"]), T0 + 650)
    s.feed(steps(1, 50, T0 + 601, g=5.0) + [val, checkpoint_record(50, t=T0 + 651)])
    moved = "checkpoints/abandoned/20261130-101500_step-50"
    s.feed([start(T0 + 700, start_step=565, moved_aside=moved, parent_step=565, branch="b3")])
    assert s.step == 565 and s.val is None and not s.checkpoints.events
    assert len(s.losses["g"].series) == 0 and s.branches.resume_steps == [565]
    msg = kinds(s, ev.ALERT_BRANCH)[-1].message
    assert "abandoned branch at step 565" in msg and "1–50" in msg and moved in msg
    s.feed(steps(566, 570, T0 + 701, g=2.0))
    assert s.losses["g"].series.buckets(10)[2] == [2.0] * 5
    # Rolled back to 300 (branch b2), trained to 310, then resumed the abandoned 565 of b1:
    # the steps up to b2's start (the common ancestor) stay.
    s = RunState(milestone_every=0)
    s.feed([start(branch="b1")] + steps(1, 565, T0, g=1.0))
    b2 = start(T0 + 600, start_step=300, branch="b2", moved_aside="c/abandoned/a_steps-350-565")
    s.feed([b2] + steps(301, 310, T0 + 601, g=4.0) + [checkpoint_record(310, t=T0 + 620)])
    b3 = start(T0 + 700, start_step=565, branch="b3", moved_aside="c/abandoned/b_step-310_2")
    s.feed([b3] + steps(566, 570, T0 + 701, g=2.0))
    assert len(s.losses["g"].series) == 305 and not s.checkpoints.events
    assert s.branches.resume_steps == [300, 565]


def test_a_plain_resume_of_the_newest_checkpoint_drops_nothing():
    s = RunState()
    s.feed([start()] + steps(1, 400, T0, g=1.0) + [end(400, T0 + 300, ev.STATUS_STOPPED)])
    s.feed([start(T0 + 400, start_step=400)] + steps(401, 450, T0 + 401, g=2.0))
    assert s.branches.resume_steps == [400] and not kinds(s, ev.ALERT_BRANCH)
    assert len(s.losses["g"].series) == 450


def test_checkpoint_events_are_kept_for_the_table_service():
    s = RunState()
    ck = ev.Checkpoint(step=200, path="checkpoints/ckpt_00000200.pt", bytes=123, sha256="ab",
                       milestone=True)  # fmt: skip
    s.feed([start(), record(ck, T0 + 5)])
    assert [(c["step"], c["path"], c["milestone"]) for c in s.checkpoints.events] == [
        (200, "checkpoints/ckpt_00000200.pt", True)
    ]


def test_garbled_and_reset():
    s = RunState()
    s.feed([start()] + steps(1, 20, T0))
    s.note_garbled(2, "events.jsonl line 7: not valid JSON")
    s.note_garbled(1, None)
    assert s.garbled == 3 and s.garbled_sample.startswith("events.jsonl line 7")
    assert [a.kind for a in kinds(s)] == [ev.ALERT_GARBLED]
    assert alerts_view(s).garbled == 3
    v = s.version
    s.reset()
    assert s.version > v
    assert s.step is None and s.garbled == 0 and not kinds(s)
    assert s.status == V.STATUS_NOT_STARTED and len(s.losses["g"].series) == 0
    s.set_pid_state(V.PID_LIVE, 7, T0)
    s.reset()  # the process is not part of the log: kept
    assert s.pid_state == V.PID_LIVE and s.status == V.STATUS_RUNNING


def test_bad_options():
    with pytest.raises(ValueError, match="milestone_every"):
        RunState(milestone_every=-1)
    with pytest.raises(ValueError, match="avg_window"):
        RunState(avg_window=2)


def test_memory_is_bounded_however_long_the_run():
    s = RunState()
    s.feed([start(target=10**7)])
    base = step(1, T0)
    for k in range(30):  # 300,000 steps in batches, as the follower delivers them
        first = k * 10_000 + 1
        s.feed([{**base, "step": n, "t": T0 + n * 0.01} for n in range(first, first + 10_000)])
    assert s.step == 300_000
    for tr in s.losses.values():
        assert tr.series.stored() <= tr.series.cap
        assert len(tr.window) <= 100
    assert len(s.progress.step_dt) <= 100 and len(s.alerts.rows) <= 1000


def test_alert_flood_is_capped_and_counted():
    from nal_tui.core.reducer.detectors import MAX_ALERTS

    s = RunState()
    n = MAX_ALERTS + 500
    s.feed(
        [start()] + [record(ev.Alert(kind=f"k{i}", step=1, message="m"), T0 + i) for i in range(n)]
    )
    v = alerts_view(s)
    assert len(v.rows) == MAX_ALERTS and v.dropped == 500 and s.alerts.total == n
    assert v.rows[-1].kind == f"k{n - 1}"  # the newest are kept


def test_a_refused_start_after_the_run_ended_leaves_its_status_and_raises_an_alert():
    # A mistyped --resume on a stopped run: the trainer writes run_end failed (exit 5) with
    # no run_start before it. Nothing ran, so the run is still stopped at its step.
    s = RunState(stale_after_s=300)
    s.feed([start()] + steps(1, 10, T0) + [end(10, T0 + 10, ev.STATUS_STOPPED)])
    s.feed([end(10, T0 + 60, ev.STATUS_FAILED, 5), end(10, T0 + 70, ev.STATUS_FAILED, 2)])
    assert s.status == V.STATUS_STOPPED
    assert not kinds(s, ev.ALERT_RUN_FAILED)
    refused = kinds(s, ev.ALERT_START_REFUSED)
    assert len(refused) == 2 and "exit code 5" in refused[0].message
    # A failed first start is the run's end.
    s = RunState(stale_after_s=300)
    s.feed([end(0, T0, ev.STATUS_FAILED, 2)])
    assert s.status == V.STATUS_CRASHED and kinds(s, ev.ALERT_RUN_FAILED)
