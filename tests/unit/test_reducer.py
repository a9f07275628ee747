"""RunState: status by the one rule, views, alerts, hostile and absurd input."""

from __future__ import annotations

import math

from nal_tui.core import vocab as V
from nal_tui.core.control.status import StatusInputs, derive_status
from nal_tui.core.reducer.present import header_view, milestones_view, progress_view
from nal_tui.core.reducer.state import RunState
from nal_tui.core.text import clean
from tests.factory import T0, record, records, run_end, run_start, step_event, steps
from trainer.events import schema as ev


def _state(events, **kw) -> RunState:
    st = RunState(**kw)
    st.feed(records(events))
    return st


def test_resumed_trainer_before_its_run_start_is_running_everywhere():
    """A live trainer whose PID file is newer than the last run_end has not logged yet:
    the dashboard's reducer and nal-tui status both say running (they used to differ)."""
    st = _state([run_start(), *steps(1, 5), run_end(5, ev.STATUS_STOPPED)])
    end_t = st.end_t
    st.set_pid_state(V.PID_LIVE, 4242, end_t + 10)
    assert st.status == V.STATUS_RUNNING
    inputs = StatusInputs(True, "stopped", end_t, V.PID_LIVE, pid_started=end_t + 10)
    assert derive_status(inputs)[0] == V.STATUS_RUNNING


def test_after_run_end_no_live_pid_and_no_next_checkpoint():
    st = _state([run_start(), *steps(1, 150)])
    st.set_pid_state(V.PID_LIVE, 4242, T0)
    assert header_view(st, T0).pid == 4242 and progress_view(st).next_checkpoint_step == 200
    st.feed([record(run_end(150), T0 + 100)])
    st.set_pid_state(V.PID_NONE)
    h, p = header_view(st, T0 + 101), progress_view(st)
    assert st.status == V.STATUS_COMPLETED and h.pid is None
    assert p.next_checkpoint_step is None and p.eta_s is None and p.ended


def test_steps_going_back_without_run_start_raise_an_alert():
    st = _state([run_start(), *steps(1, 50), *steps(10, 20)])
    kinds = [a.kind for a in st.alerts.rows]
    assert ev.ALERT_BACKWARDS in kinds and st.branches.resume_steps == []
    st2 = _state([run_start(), *steps(1, 50), run_start(start=9), *steps(10, 20)])
    assert ev.ALERT_BACKWARDS not in [a.kind for a in st2.alerts.rows]
    assert st2.branches.resume_steps == [9]


def test_absurd_step_numbers_neither_hang_nor_blow_up():
    big = 10**12
    st = _state([run_start(target=big), step_event(1), step_event(big - 1), step_event(big)])
    ms = milestones_view(st)
    assert st.step == big and len(ms.rows) <= 6 and ms.pending >= 0
    assert st.losses["g"].series.stored() <= st.losses["g"].series.cap


def test_hostile_strings_are_cleaned_and_capped():
    evil = "\x1b]0;pwned\x07\x1b[2J" + "A" * 10_000
    st = _state([run_start(run_name=evil, device="\x1b[31mcpu"), *steps(1, 3)])
    st.feed(records([ev.Alert(kind="x\x1b[1m", step=3, message=evil)], T0 + 10))
    h = header_view(st, T0)
    assert "\x1b" not in h.run_name and len(h.run_name) <= 80 and h.device == "cpu"
    a = st.alerts.rows[-1]
    assert "\x1b" not in a.message and len(a.message) <= 300 and a.kind == "x"
    assert clean("a\tb\nc\x00d\u202e") == "a b cd"


def test_nonfinite_collapse_and_imbalance_detectors():
    evs = [run_start(), *steps(1, 10), step_event(11, g=math.nan), *steps(12, 20)]
    evs += [step_event(s, d=0.001) for s in range(21, 80)]
    st = _state(evs)
    kinds = [a.kind for a in st.alerts.rows]
    assert kinds.count(ev.ALERT_NONFINITE) == 1 and ev.ALERT_D_COLLAPSE in kinds
    evs = [run_start(), *[step_event(s, adv=2.5 if s < 256 else 40.0) for s in range(1, 600)]]
    assert ev.ALERT_IMBALANCE in [a.kind for a in _state(evs).alerts.rows]


def test_status_rule_covers_every_case():
    def s(**kw):
        base = dict(has_events=True, end_status=None, end_t=None, pid_state=V.PID_NONE)
        return derive_status(StatusInputs(**{**base, **kw}))[0]

    assert s(has_events=False) == V.STATUS_NOT_STARTED
    assert s() == V.STATUS_RUNNING
    assert s(since_last_event=1e6) == V.STATUS_STALE
    assert s(pid_state=V.PID_STALE) == V.STATUS_CRASHED
    assert s(pid_state=V.PID_GARBLED) == V.STATUS_STALE
    assert s(end_status="completed", end_t=5.0) == V.STATUS_COMPLETED
    assert s(end_status="failed", end_t=5.0) == V.STATUS_CRASHED
    assert s(pid_state=V.PID_LIVE, stopping=True) == V.STATUS_STOPPING
    assert s(end_status="stopped", end_t=5.0, pid_state=V.PID_LIVE, pid_started=4.0) == "stopped"


def test_stall_alert_after_silence_and_garbled_counted():
    st = _state([run_start(), *steps(1, 100)])
    st.set_pid_state(V.PID_LIVE, 1, T0)
    st.refresh(T0 + 10 + 10_000)
    assert ev.ALERT_STALLED in [a.kind for a in st.alerts.rows]
    st.note_garbled(3, "events.jsonl line 9: bad\x1b[2J")
    assert st.garbled == 3 and "\x1b" not in st.garbled_sample
