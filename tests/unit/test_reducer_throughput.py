"""Numbers that hold on a busy machine: a time-weighted rate that multiplies out to the
samples/s on screen, an ETA with the pauses ahead and its uncertainty, and a stall alert that
counts only a live trainer's silence (issue 20)."""

from __future__ import annotations

import pytest

from nal_tui.core import vocab as V
from nal_tui.core.reducer.present import progress_view
from nal_tui.core.reducer.progress import STARTUP_STALL_S
from nal_tui.core.reducer.state import RunState
from nal_tui.ui.run.progress import progress_lines
from tests.factory import T0, checkpoint_record, record, run_end, run_start, step_event
from trainer.events import schema as ev


def start(t=T0, start_step=0, target=1000, **kw) -> dict:
    kw.setdefault("pid", 4242)
    return record(run_start(start_step, target, **kw), t)


def rows(first: int, intervals: list[float], t0: float) -> tuple[list[dict], float]:
    """Step rows from ``first``, one per interval; returns them and the last time."""
    out, t = [], t0
    for i, dt in enumerate(intervals):
        t += dt
        out.append(record(step_event(first + i), t))
    return out, t


def stalled(s: RunState) -> list:
    return [a for a in s.alerts.rows if a.kind == ev.ALERT_STALLED]


def test_rate_is_time_weighted_not_the_median_interval() -> None:
    # The log: most intervals 0.9 s, but slow ones of 26 s on a loaded machine.
    pattern = [0.9] * 5 + [26.0]
    intervals = pattern * 10
    recs, _ = rows(1, intervals, T0)
    s = RunState()
    s.feed([start(batch_size=4, world_size=1, val_every=0, checkpoint_every=0)] + recs)
    p = progress_view(s)
    done = len(intervals) - 1  # the first row's interval follows run_start, a pause
    expected = done / sum(intervals[1:])
    assert p.steps_per_s == pytest.approx(expected)
    assert p.steps_per_s < 0.5 < 1 / 0.9  # the median would say 1.11 steps/s
    assert p.eta_s == pytest.approx((1000 - 60) / expected)


def test_samples_per_s_is_steps_per_s_times_batch_times_ranks() -> None:
    recs, _ = rows(1, [0.5] * 40, T0)  # the trainer reports samples_per_s 40 (compute only)
    s = RunState()
    s.feed([start(batch_size=4, world_size=2)] + recs)
    p = progress_view(s)
    assert p.steps_per_s == pytest.approx(2.0)
    assert p.samples_per_s == pytest.approx(2.0 * 4 * 2)


def test_eta_includes_the_validations_and_checkpoints_ahead() -> None:
    s = RunState()
    recs, t = rows(1, [0.5] * 100, T0)
    recs.append(record(ev.Val(step=100, losses={}, samples=[], duration=30.0), t + 30))
    recs.append(checkpoint_record(100, t=t + 35, duration=5.0))
    more, _ = rows(101, [0.5] * 100, t + 35)
    s.feed([start(val_every=100, checkpoint_every=200)] + recs + more)
    p = progress_view(s)
    assert p.step == 200 and p.steps_per_s == pytest.approx(2.0)
    # 800 steps at 0.5 s, 8 validations (300..1000) at 30 s, 4 checkpoints (400..1000) at 5 s.
    assert p.eta_s == pytest.approx(800 * 0.5 + 8 * 30.0 + 4 * 5.0)


def test_noisy_rate_gives_an_eta_range_and_a_steady_one_none() -> None:
    steady = RunState()
    recs, _ = rows(1, [0.5] * 80, T0)
    steady.feed([start(val_every=0, checkpoint_every=0)] + recs)
    assert progress_view(steady).eta_range_s is None
    noisy = RunState()
    recs, _ = rows(1, [0.5] * 40 + [2.0] * 40, T0)  # the machine got busy half-way
    noisy.feed([start(val_every=0, checkpoint_every=0)] + recs)
    p = progress_view(noisy)
    lo, hi = p.eta_range_s
    assert lo == pytest.approx((1000 - 80) * 0.5) and hi == pytest.approx((1000 - 80) * 2.0)
    assert lo < p.eta_s < hi
    shown = progress_lines(p).text(60).plain
    assert "ETA" in shown and "–" in shown  # the range is on screen


def test_no_stall_while_no_trainer_ran_nor_while_the_new_one_starts() -> None:
    s = RunState()
    recs, t = rows(1, [1.0] * 50, T0)
    s.feed([start()] + recs + [record(run_end(50, ev.STATUS_STOPPED), t + 1)])
    # The user resumes 83 s later; the new trainer loads torch and writes nothing yet.
    resumed = t + 84
    s.set_pid_state(V.PID_LIVE, 5151, resumed)
    s.refresh(resumed + 30)
    assert s.status == V.STATUS_RUNNING and s.starting_up
    assert stalled(s) == []  # 113 s since the last event, but only 30 s of this trainer
    s.refresh(resumed + STARTUP_STALL_S - 1)
    assert stalled(s) == []
    s.refresh(resumed + STARTUP_STALL_S + 1)  # a start-up that never ends is a stall
    (alert,) = stalled(s)
    assert "has not begun its run" in alert.message


def test_a_live_trainer_writing_nothing_still_stalls() -> None:
    s = RunState()
    s.set_pid_state(V.PID_LIVE, 4242, T0 - 5)
    recs, t = rows(1, [1.0] * 50, T0)
    s.feed([start()] + recs)
    assert not s.starting_up
    s.refresh(t + 30)
    assert stalled(s) == []
    s.refresh(t + 61)  # 20 x 1 s, at least 60 s
    (alert,) = stalled(s)
    assert alert.message.startswith("no event for 61 s")
