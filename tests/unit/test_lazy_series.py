"""The optimiser's series (learning rates, gradient norms) are built on first use: until
then a long run's open pays nothing for them, and once built they equal the series an eager
build holds, whatever the run appended, cut (branches) or summarised meanwhile."""

from __future__ import annotations

import math

from nal_tui.core.feed import loader
from nal_tui.core.feed.follow import LogFollower
from nal_tui.core.feed.loader import load_history
from nal_tui.core.reducer import losses
from nal_tui.core.reducer.losses import build_pending
from nal_tui.core.reducer.state import RunState
from tests.factory import T0, record, run_start, step_event, write_events
from trainer.events.schema import OPT_KEYS


def _rows(first: int, last: int, t0: float = T0) -> list[dict]:
    return [
        record(step_event(n, lr_g=1e-3 / (1 + n // 300), lr_d=2e-4 + n * 1e-9,
                          grad_norm_g=2.0 + (n % 13) / 13 if n % 5 else math.nan,
                          grad_norm_d=0.5 + (n % 7) / 7), t0 + n * 0.1)
        for n in range(first, last + 1)
    ]  # fmt: skip


def _eager() -> RunState:
    """A state whose optimiser series are built from the start (the reference)."""
    s = RunState()
    for tr in s.opt.values():
        assert len(tr.series) == 0 and tr.ready
    return s


def _digest(s: RunState) -> list:
    out = []
    for k in OPT_KEYS:
        tr = s.track(k)
        ser = tr.series
        out.append((k, len(ser), ser.width, ser.first_step, ser.last_step, ser.extremes(),
                    [str(ser.buckets(n)) for n in (7, 50, 5000)], tr.current, tr.moving_avg))  # fmt: skip
    return out


def _feed_history(s: RunState) -> None:
    s.feed([record(run_start(0, 100_000, pid=4242, milestone_every=0), T0)])
    s.feed(_rows(1, 1200))
    s.feed([record(run_start(900, 100_000, pid=4242, milestone_every=0), T0 + 200)])  # a branch
    s.feed(_rows(901, 2000, T0 + 300))


def test_lazy_series_cost_nothing_until_asked_then_equal_the_eager_ones():
    lazy, ref = RunState(), _eager()
    _feed_history(lazy)
    _feed_history(ref)
    assert not any(tr.ready for tr in lazy.opt.values())
    assert all(tr.ready for tr in lazy.losses.values())
    # The panel's figures need no series: they are there before it is built.
    assert [lazy.track(k).current for k in OPT_KEYS] == [ref.track(k).current for k in OPT_KEYS]
    assert _digest(lazy) == _digest(ref)
    assert all(tr.ready for tr in lazy.opt.values())
    # Built, it follows the run as an eager one does.
    lazy.feed(_rows(2001, 2600, T0 + 500))
    ref.feed(_rows(2001, 2600, T0 + 500))
    assert _digest(lazy) == _digest(ref)


def test_a_series_built_on_another_thread_takes_what_was_appended_meanwhile():
    lazy, ref = RunState(), _eager()
    _feed_history(lazy)
    _feed_history(ref)
    snaps = {k: lazy.opt[k].pending() for k in OPT_KEYS}  # what a worker thread is given
    for s in (lazy, ref):  # the run goes on while it builds: rows, a branch, more rows
        s.feed(_rows(2001, 2300, T0 + 500))
        s.feed([record(run_start(2100, 100_000, pid=4242, milestone_every=0), T0 + 600)])
        s.feed(_rows(2101, 2500, T0 + 700))
    for k, ops in snaps.items():
        assert not lazy.opt[k].ready
        lazy.opt[k].install(build_pending(ops), len(ops))
        assert lazy.opt[k].ready
    assert _digest(lazy) == _digest(ref)


def test_through_the_index_summaries_and_rows_build_the_same_series(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "SUMMARY_MIN_SPAN", 0)  # summaries in a short run too
    evs = [run_start(target=20_000, milestone_every=100_000)]
    evs += [step_event(n, lr_g=1e-3 / (1 + n // 1000), grad_norm_g=2.0 + (n % 11) / 11,
                       grad_norm_d=1.0) for n in range(1, 8000)]  # fmt: skip
    path = write_events(tmp_path / "events.jsonl", evs)

    def load() -> RunState:
        s = RunState()
        load_history(LogFollower(path, lambda r, st: None), s)
        return s

    calls: list[int] = []
    real = RunState.feed_summary
    monkeypatch.setattr(RunState, "feed_summary", lambda *a: calls.append(1) or real(*a))
    lazy = load()
    assert calls and not any(tr.ready for tr in lazy.opt.values())
    ref = _eager()
    load_history(LogFollower(path, lambda r, st: None), ref)
    assert _digest(lazy) == _digest(ref)


def test_a_series_never_shown_builds_itself_past_a_bound(monkeypatch):
    monkeypatch.setattr(losses, "PENDING_MAX", 10)
    lazy, ref = RunState(), _eager()
    for s in (lazy, ref):
        s.feed([record(run_start(0, 100_000, pid=4242, milestone_every=0), T0)])
        for i in range(20):  # one batch each, as a live follower feeds
            s.feed(_rows(i * 10 + 1, i * 10 + 10))
    assert all(tr.ready and not tr.pending() for tr in lazy.opt.values())
    assert _digest(lazy) == _digest(ref)
