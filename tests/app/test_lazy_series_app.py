"""The optimiser's series on the dashboard (Pilot): not built by the open, built off the UI
thread when first selected, and then the same as a fresh full load of the log, also for
the steps the run appended while the dashboard watched it."""

from __future__ import annotations

from pathlib import Path

from nal_tui.core.compare.runs import load_state
from nal_tui.core.reducer.state import RunState
from nal_tui.ui.charts.chart import BigChart
from tests.app.apphelp import make_app, until
from tests.app.test_samples import sync
from tests.factory import T0, run_start, step_event, write_events
from trainer.events.schema import OPT_KEYS
from trainer.rundir.layout import EVENTS


def _rows(first: int, last: int) -> list:
    return [
        step_event(n, lr_g=1e-3 / (1 + n // 500), lr_d=2e-4 - n * 1e-9,
                   grad_norm_g=2.0 + (n % 13) / 13, grad_norm_d=0.5 + (n % 7) / 7)
        for n in range(first, last + 1)
    ]  # fmt: skip


def _figures(st: RunState) -> list:
    """What the chart and panel draw of each optimiser series."""
    out = []
    for k in OPT_KEYS:
        tr = st.track(k)
        s = tr.series
        out.append((k, len(s), s.first_step, s.last_step, s.extremes(),
                    str(s.buckets(120)), tr.current, tr.moving_avg))  # fmt: skip
    return out


@sync
async def test_lr_series_built_on_selection_equal_a_fresh_load_as_the_run_appends(tmp_path):
    rd = tmp_path / "logs" / "lazy"
    log = rd / EVENTS
    write_events(log, [run_start(target=20_000, milestone_every=0), *_rows(1, 4000)], T0, 0.1)
    app = make_app(rd, tmp_path / "logs")
    async with app.run_test(size=(160, 45)) as pilot:
        assert await until(pilot, lambda: app.settled and app.state.step == 4000, 60)
        assert not any(tr.ready for tr in app.state.opt.values())  # the open built none
        # The run appends while nobody looks at the lr: selected afterwards, it holds it all.
        write_events(log, _rows(4001, 4600), T0 + 500, 0.1)
        assert await until(pilot, lambda: app.state.step == 4600, 60)
        big = app.query_one(BigChart)
        await pilot.press("6")
        assert await until(pilot, lambda: "lr G · whole run" in str(big.border_title), 60)
        assert await until(pilot, lambda: app.settled, 60)
        assert all(tr.ready for tr in app.state.opt.values())
        assert big.series is app.state.opt["lr_g"].series
        assert _figures(app.state) == _figures(load_state(rd))
        # Built, the series go on following the run.
        write_events(log, [run_start(4500, 20_000, milestone_every=0), *_rows(4501, 5200)],
                     T0 + 900, 0.1)  # fmt: skip
        assert await until(pilot, lambda: app.state.step == 5200 and app.settled, 60)
        assert _figures(app.state) == _figures(load_state(rd))
        await pilot.press("9")  # its group is built: the selection moves at once
        assert "grad norm D" in str(big.border_title)


@sync
async def test_an_optimiser_series_selected_when_the_history_arrives_is_built_aside(tmp_path):
    rd = tmp_path / "logs" / "lazy"
    write_events(rd / EVENTS, [run_start(target=20_000, milestone_every=0), *_rows(1, 3000)])
    app = make_app(rd, tmp_path / "logs")
    app.selected = 7  # as a run switch keeps the selection (grad norm G)
    async with app.run_test(size=(160, 45)) as pilot:
        big = app.query_one(BigChart)
        assert await until(pilot, lambda: app.settled and app.state.step == 3000, 60)
        assert await until(pilot, lambda: "grad norm G · whole run" in str(big.border_title))
        assert app.selected == 7 and big.series is app.state.opt["grad_norm_g"].series
        assert _figures(app.state) == _figures(load_state(Path(rd)))
