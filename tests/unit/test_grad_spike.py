"""The gradient-spike alert and the optimiser's series (learning rates, gradient norms)."""

from __future__ import annotations

import math

from nal_tui.core.reducer.state import RunState
from tests.factory import T0, record, run_start, step_event
from trainer.events import schema as ev


def start() -> dict:
    return record(run_start(0, 100_000, pid=4242, milestone_every=0), T0)


def rows(first, last, gn=lambda n: 1.0, gd=lambda n: 0.5, **kw) -> list[dict]:
    return [
        record(step_event(n, grad_norm_g=gn(n), grad_norm_d=gd(n), **kw), T0 + n * 0.1)
        for n in range(first, last + 1)
    ]


def spikes(s: RunState):
    return [a for a in s.alerts.rows if a.kind == ev.ALERT_GRAD_SPIKE]


def test_a_spike_over_ten_times_the_recent_median_alerts_once_per_episode():
    s = RunState()
    s.feed([start()] + rows(1, 1000))
    assert not spikes(s)
    # Norm 1.0 for G: 12 is x12 its median; three spikes in the same and the next window
    # are one episode.
    s.feed(rows(1001, 1100, gn=lambda n: 12.0 if n in (1050, 1060, 1300) else 1.0))
    s.feed(rows(1101, 1400, gn=lambda n: 12.0 if n == 1300 else 1.0))
    a = spikes(s)
    assert [x.step for x in a] == [1050] and a[0].level == "warning"
    assert a[0].message.startswith("G gradient norm spike: 12 at step 1,050, x12.0")
    # A window without a spike ends the episode; the next spike is a new alert (D's too).
    s.feed(rows(1401, 2000))
    s.feed(rows(2001, 2100, gn=lambda n: 30.0 if n == 2050 else 1.0,
                gd=lambda n: 9.0 if n == 2099 else 0.5))  # fmt: skip
    assert [(x.step, x.message[0]) for x in spikes(s)] == [(1050, "G"), (2050, "G"), (2099, "D")]


def test_a_steady_rise_or_a_short_run_does_not_alert():
    s = RunState()
    # Norms that grow 20-fold over 20k steps (steady, not a spike).
    s.feed(
        [start()] + rows(1, 20_000, gn=lambda n: 1.0 + n / 1000, gd=lambda n: 0.1 * (1 + n / 1000))
    )
    assert not spikes(s)
    t = RunState()  # too little history for a median: nothing is judged
    t.feed([start()] + rows(1, 300, gn=lambda n: 100.0 if n == 299 else 1.0))
    assert not spikes(t)


def test_absent_gradient_norms_are_no_points_and_no_alert():
    s = RunState()
    s.feed([start()] + [record(step_event(n), T0 + n) for n in range(1, 600)])
    assert len(s.opt["grad_norm_g"].series) == 0 and not spikes(s)
    assert len(s.opt["lr_g"].series) == 599 and s.opt["lr_g"].current == 2e-4
    assert not [a for a in s.alerts.rows if a.kind == ev.ALERT_NONFINITE]


def test_the_optimiser_series_follow_a_branch_cut():
    s = RunState()
    s.feed([start()] + rows(1, 500, gn=lambda n: float(n)))
    s.feed([record(run_start(200, 100_000, pid=4242, milestone_every=0), T0 + 100)])
    s.feed(rows(201, 250, gn=lambda n: -1.0 if math.isnan(n) else 7.0))
    tr = s.track("grad_norm_g")
    assert tr is s.opt["grad_norm_g"] and tr.series.last_step == 250 and tr.current == 7.0
    assert s.track("g") is s.losses["g"] and s.track("nope") is None
