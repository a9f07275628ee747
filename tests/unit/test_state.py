"""The reducer: records in, run state out (numbers checked against hand-computed values)."""

from __future__ import annotations

import math

import pytest

from nal_tui import state as S
from nal_tui.state import RunState
from trainer import events as ev

T0 = 1_700_000_000.0


def rec(event: ev.Event, t: float) -> dict:
    """A record as the follower delivers it: encoded to a line and parsed back."""
    return ev.loads(ev.encode(event.to_record(t)))


def start(t=T0, start_step=0, target=1000, **kw) -> dict:
    fields = dict(
        run_id="r1",
        pid=4242,
        config_path="config/demo.yaml",
        start_step=start_step,
        target_step=target,
        world_size=1,
        device="cpu",
        versions={},
        run_name="demo",
        recon_loss="mrstft",
        checkpoint_every=200,
        val_every=100,
        milestone_every=0,
    )
    fields.update(kw)
    return rec(ev.RunStart(**fields), t)


def step(n, t, g=10.0, d=3.0, stft=1.0, adv=2.0, fm=4.0, sps=80.0, epoch=1) -> dict:
    e = ev.Step(
        step=n,
        epoch=epoch,
        g=g,
        d=d,
        stft=stft,
        adv=adv,
        fm=fm,
        recon="mrstft",
        lr_g=2e-4,
        lr_d=2e-4,
        step_time=0.4,
        samples_per_s=sps,
    )
    return rec(e, t)


def steps(first, last, t0, dt=0.5, every=1, **kw) -> list[dict]:
    return [step(n, t0 + (n - first) * dt, **kw) for n in range(first, last + 1, every)]


def end(n, t, status=ev.STATUS_COMPLETED, code=0) -> dict:
    return rec(ev.RunEnd(step=n, status=status, reason="why", exit_code=code), t)


def test_empty_state():
    s = RunState()
    assert s.status == S.STATUS_NOT_STARTED
    assert s.step is None and s.eta_s is None and s.progress == 0.0
    assert s.losses["g"].current is None and s.losses["g"].moving_avg is None
    assert s.losses["g"].series.buckets(10) == ([], [], [], [])


def test_progress_rates_eta_and_next_checkpoint():
    s = RunState()
    v0 = s.version
    recs = [start()] + steps(1, 50, T0 + 1)
    # A 100 s validation pause between step 50 and 51 must not slow the rate down.
    recs.append(
        rec(
            ev.Val(step=50, losses={"stft": 0.9}, samples=["a.wav"], duration=100.0),
            T0 + 1 + 49 * 0.5 + 100,
        )
    )
    recs += steps(51, 150, T0 + 1 + 49 * 0.5 + 100.5, sps=64.0)
    s.feed(recs)
    assert s.version > v0
    assert s.status == S.STATUS_RUNNING
    assert (s.step, s.target_step, s.progress) == (150, 1000, 0.15)
    assert s.seconds_per_step == pytest.approx(0.5)
    assert s.steps_per_s == pytest.approx(2.0)
    assert s.samples_per_s == pytest.approx(64.0)
    assert s.eta_s == pytest.approx(850 * 0.5)
    assert s.next_checkpoint_step == 200
    assert s.next_checkpoint_eta_s == pytest.approx(25.0)
    assert s.val.step == 50 and s.val.losses == {"stft": 0.9} and s.val.samples == ["a.wav"]
    assert (s.run_name, s.run_id, s.pid, s.device, s.recon_name) == (
        "demo",
        "r1",
        4242,
        "cpu",
        "mrstft",
    )


def test_rate_with_sparse_step_events():
    s = RunState()
    # log_every 10: one event every 10 steps, 4 s apart -> 0.4 s/step.
    s.feed([start()] + steps(10, 400, T0, dt=0.4, every=10))
    assert s.seconds_per_step == pytest.approx(0.4)
    assert s.eta_s == pytest.approx(600 * 0.4)


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


def test_one_by_one_equals_one_batch():
    recs = [start(checkpoint_every=50, milestone_every=40)]
    for n in range(1, 401):
        d = 0.001 if 200 <= n < 280 else 3.0
        g = math.nan if n in (77, 78, 301) else 10.0 + n % 7
        recs.append(step(n, T0 + n * 0.5, g=g, d=d))
        if n % 50 == 0:
            recs.append(
                rec(ev.Checkpoint(step=n, path=f"c{n}.pt", bytes=1, sha256="0"), T0 + n * 0.5)
            )
    a, b = RunState(), RunState()
    a.feed(recs)
    for r in recs:
        b.feed([r])
    for s in (a, b):
        assert s.step == 400
    assert [(x.kind, x.step) for x in a.alerts] == [(x.kind, x.step) for x in b.alerts]
    assert a.eta_s == pytest.approx(b.eta_s)
    assert a.losses["g"].moving_avg == pytest.approx(b.losses["g"].moving_avg)
    assert [(m.step, m.t) for m in a.milestones] == [(m.step, m.t) for m in b.milestones]
    assert a.losses["d"].series.buckets(40) == b.losses["d"].series.buckets(40)


def test_nonfinite_alert_once_per_episode_and_nan_visible():
    s = RunState()
    recs = [start()] + steps(1, 10, T0)
    recs += [step(11, T0 + 6, g=math.nan), step(12, T0 + 7, g=math.inf, d=math.nan)]
    recs += steps(13, 20, T0 + 8)
    recs += [step(21, T0 + 20, fm=-math.inf)]
    s.feed(recs)
    alerts = [a for a in s.alerts if a.kind == S.ALERT_NONFINITE]
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
        [rec(ev.Alert(kind=ev.ALERT_NONFINITE, step=1, message="skipped", level="error"), T0 + 1)]
    )
    s.feed([rec(ev.Alert(kind=ev.ALERT_CHECKPOINT_SKIPPED, step=1, message="disk full"), T0 + 2)])
    assert [(a.kind, a.source) for a in s.alerts] == [
        (ev.ALERT_NONFINITE, "dashboard"),
        (ev.ALERT_CHECKPOINT_SKIPPED, "trainer"),
    ]


def test_d_collapse_alert():
    s = RunState()
    s.feed([start()] + steps(1, 100, T0))
    assert not s.alerts
    s.feed(steps(101, 160, T0 + 60, d=0.001))
    collapse = [a for a in s.alerts if a.kind == S.ALERT_D_COLLAPSE]
    assert [a.step for a in collapse] == [150]  # the 50th collapsed value
    s.feed(steps(161, 200, T0 + 100, d=0.001))
    s.feed(steps(201, 210, T0 + 120, d=3.0))
    s.feed(steps(211, 260, T0 + 130, d=0.0))
    collapse = [a for a in s.alerts if a.kind == S.ALERT_D_COLLAPSE]
    assert [a.step for a in collapse] == [150, 260]  # one alert per episode


def test_gd_imbalance_alert():
    s = RunState(imbalance_factor=4.0)
    s.feed([start()] + steps(1, 100, T0, adv=2.0, d=2.0))  # reference ratio 1
    s.feed(steps(101, 300, T0 + 100, adv=20.0, d=2.0))
    alerts = [a for a in s.alerts if a.kind == S.ALERT_IMBALANCE]
    assert len(alerts) == 1
    assert "x" in alerts[0].message and 100 < alerts[0].step <= 200


def test_stalled_alert():
    s = RunState(stall_factor=20.0, stall_min_s=60.0)
    s.feed([start()] + steps(1, 50, T0, dt=1.0))
    last = s.last_event_t
    assert s.stall_limit_s == pytest.approx(60.0)
    s.set_process(True, 4242)
    s.refresh(last + 30)
    assert not s.alerts and not s.stalled
    s.refresh(last + 61)
    assert [a.kind for a in s.alerts] == [S.ALERT_STALLED] and s.stalled
    s.refresh(last + 120)
    assert len(s.alerts) == 1
    s.feed(steps(51, 51, last + 121))
    assert not s.stalled
    assert s.since_last_event(last + 122) == pytest.approx(1.0)


def test_crashed_when_process_gone_without_run_end():
    s = RunState()
    s.feed([start()] + steps(1, 5, T0))
    s.set_process(True, 99)
    assert s.status == S.STATUS_RUNNING and s.pid == 99
    s.set_process(False)
    assert s.status == S.STATUS_CRASHED
    assert [a.kind for a in s.alerts] == [S.ALERT_CRASHED]
    assert s.eta_s is None
    s.set_process(False)
    assert len(s.alerts) == 1  # one alert per crash


def test_status_transitions():
    s = RunState(stale_after_s=300)
    assert s.status == S.STATUS_NOT_STARTED
    s.set_process(True, 1)
    assert s.status == S.STATUS_RUNNING  # process alive, no event yet
    s.feed([start()] + steps(1, 10, T0))
    assert s.status == S.STATUS_RUNNING
    s.set_stopping()
    assert s.status == S.STATUS_STOPPING
    s.feed([end(10, T0 + 10, ev.STATUS_STOPPED)])
    assert s.status == S.STATUS_STOPPED
    s.set_process(False)
    assert s.status == S.STATUS_STOPPED  # run_end decides; no crash alert
    s.feed([start(T0 + 100, start_step=10)] + steps(11, 20, T0 + 101))
    assert s.status == S.STATUS_RUNNING  # process unknown to us yet, log is fresh
    s.feed([end(1000, T0 + 200)])
    assert s.status == S.STATUS_COMPLETED and s.eta_s is None
    assert not [a for a in s.alerts if a.kind == S.ALERT_CRASHED]


def test_stale_when_process_unknown_and_log_old():
    s = RunState(stale_after_s=300)
    s.feed([start()] + steps(1, 10, T0))
    last = s.last_event_t
    s.refresh(last + 100)
    assert s.status == S.STATUS_RUNNING
    s.refresh(last + 301)
    assert s.status == S.STATUS_STALE
    s.feed(steps(11, 11, last + 302))
    s.refresh(last + 303)
    assert s.status == S.STATUS_RUNNING


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        (dict(end_status="completed", pid_state=S.PID_LIVE), S.STATUS_COMPLETED),
        (dict(end_status="stopped", pid_state=S.PID_STALE), S.STATUS_STOPPED),
        (dict(end_status="failed", pid_state=S.PID_NONE), S.STATUS_CRASHED),
        (dict(pid_state=S.PID_LIVE, since_last_event=1e6), S.STATUS_RUNNING),
        (dict(pid_state=S.PID_LIVE, stopping=True), S.STATUS_STOPPING),
        (dict(pid_state=S.PID_STALE, since_last_event=1.0), S.STATUS_CRASHED),
        (dict(pid_state=S.PID_STALE, has_events=False), S.STATUS_CRASHED),
        (dict(pid_state=S.PID_GARBLED, since_last_event=1.0), S.STATUS_STALE),
        (dict(pid_state=S.PID_NONE, since_last_event=10.0), S.STATUS_RUNNING),
        (dict(pid_state=S.PID_NONE, since_last_event=None), S.STATUS_RUNNING),
        (dict(pid_state=S.PID_NONE, since_last_event=301.0), S.STATUS_STALE),
        (dict(pid_state=S.PID_NONE, has_events=False), S.STATUS_NOT_STARTED),
        # A live trainer that started after the last run_end: a new session, not logged yet.
        (
            dict(end_status="stopped", pid_state=S.PID_LIVE, end_t=10.0, live_since=20.0),
            S.STATUS_RUNNING,
        ),
        (
            dict(end_status="stopped", pid_state=S.PID_LIVE, end_t=20.0, live_since=10.0),
            S.STATUS_STOPPED,
        ),
    ],
)
def test_derive_status_rule(kw, status):
    args = dict(has_events=True, end_status=None, stale_after_s=300.0)
    args.update(kw)
    got, reason = S.derive_status(**args)
    assert got == status and reason
    if kw["pid_state"] == S.PID_STALE and status == S.STATUS_CRASHED:
        assert "PID file is stale" in reason


def test_derive_status_rejects_unknown_pid_state():
    with pytest.raises(ValueError, match="pid_state"):
        S.derive_status(has_events=True, end_status=None, pid_state="dead")


def test_garbled_pid_file_makes_a_run_stale_and_reason_is_kept():
    s = RunState()
    s.feed([start()] + steps(1, 5, T0))
    s.set_pid_state(S.PID_GARBLED)
    assert s.status == S.STATUS_STALE and "unreadable" in s.status_reason
    s.set_pid_state(S.PID_LIVE, 77)
    assert s.status == S.STATUS_RUNNING and s.pid == 77 and s.process_alive is True
    s.set_pid_state(S.PID_STALE)
    assert s.status == S.STATUS_CRASHED and "PID file is stale" in s.status_reason
    assert [a.message for a in s.alerts if a.kind == S.ALERT_CRASHED] == [s.status_reason]


def test_failed_run_end_shows_crashed_with_reason():
    s = RunState()
    s.feed([start()] + steps(1, 3, T0) + [end(3, T0 + 5, ev.STATUS_FAILED, ev.EXIT_NONFINITE)])
    assert s.status == S.STATUS_CRASHED
    assert s.exit_code == ev.EXIT_NONFINITE and s.end_status == ev.STATUS_FAILED
    assert [a.kind for a in s.alerts] == [S.ALERT_RUN_FAILED]


def test_milestone_times():
    s = RunState(milestone_every=100)
    s.feed([start(target=300)] + steps(30, 150, T0, dt=3.0, every=30))
    rows = s.milestones
    assert [r.step for r in rows] == [100, 200, 300]
    # Step 100 is first reached by the event for step 120 (log every 30 steps).
    assert rows[0].t == pytest.approx(T0 + 90 * 3.0)
    assert rows[1].t is None and rows[2].t is None
    s.feed(steps(180, 300, T0 + 500, dt=3.0, every=30))
    rows = s.milestones
    assert rows[1].t == pytest.approx(T0 + 500 + 30 * 3.0)  # step 210
    assert rows[2].t == pytest.approx(T0 + 500 + 120 * 3.0)  # step 300


def test_milestone_default_and_from_run_start():
    assert RunState().milestone_every == 10_000
    s = RunState()
    s.feed([start(milestone_every=500, target=1000)])
    assert [r.step for r in s.milestones] == [500, 1000]


def test_resume_markers_keep_every_step():
    s = RunState()
    s.feed([start()] + steps(1, 500, T0, g=1.0))
    s.feed([start(T0 + 400, start_step=400)] + steps(401, 600, T0 + 401, g=2.0))
    assert s.resume_steps == [400]
    assert s.step == 600 and s.max_step == 600
    st, mins, maxs, _ = s.losses["g"].series.buckets(6)
    # The abandoned steps 401..500 and their replay are both visible.
    k = st.index(401)
    assert (mins[k], maxs[k]) == (1.0, 2.0)
    # A step going backwards without a run_start is marked too.
    s.feed(steps(550, 560, T0 + 700))
    assert s.resume_steps == [400, 550]


def test_checkpoints_table_and_verification():
    s = RunState()
    ck = ev.Checkpoint(
        step=200, path="checkpoints/step_200.pt", bytes=123, sha256="ab", milestone=True
    )
    s.feed([start(), rec(ck, T0 + 5)])
    row = s.checkpoints[0]
    assert (row.step, row.bytes, row.path, row.sha256, row.milestone, row.verified) == (
        200,
        123,
        "checkpoints/step_200.pt",
        "ab",
        True,
        None,
    )
    v = s.version
    s.set_checkpoint_verified("checkpoints/step_200.pt", True)
    assert row.verified is True and s.version > v


def test_garbled_and_reset():
    s = RunState()
    s.feed([start()] + steps(1, 20, T0))
    s.note_garbled(2, "events.jsonl line 7: not valid JSON")
    s.note_garbled(1, None)
    assert s.garbled == 3 and s.garbled_sample.startswith("events.jsonl line 7")
    assert [a.kind for a in s.alerts] == [S.ALERT_GARBLED]
    v = s.version
    s.reset()
    assert s.version > v
    assert s.step is None and s.garbled == 0 and not s.alerts
    assert s.status == S.STATUS_NOT_STARTED and len(s.losses["g"].series) == 0
    s.set_process(True, 7)
    s.reset()  # the process is not part of the log: kept
    assert s.process_alive is True and s.status == S.STATUS_RUNNING


def test_step_record_with_missing_fields_is_counted_not_fatal():
    s = RunState()
    bad = step(2, T0 + 1)
    del bad["g"]
    s.feed([start(), step(1, T0), bad, step(3, T0 + 2)])
    assert s.step == 3 and s.garbled == 1
    assert "g" in s.garbled_sample


def test_bad_options():
    with pytest.raises(ValueError, match="milestone_every"):
        RunState(milestone_every=-1)


def test_headless_modules_import_neither_torch_nor_textual():
    import subprocess
    import sys

    code = (
        "import sys, nal_tui.state, nal_tui.follow, nal_tui.series, nal_tui.history\n"
        "bad = [m for m in ('torch', 'numpy', 'textual') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
