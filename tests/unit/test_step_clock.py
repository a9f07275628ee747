"""The step clock (when each live step was logged) behind ``compare``'s wall-clock axis:
interpolation, thinning, the branch rule, and a run loaded both ways (binary index
summaries and JSONL rows) giving the same times."""

from __future__ import annotations

from pathlib import Path

import pytest

from nal_tui.core.compare.runs import elapsed, load_state
from nal_tui.core.reducer.clock import StepClock
from tests.factory import T0, run_start, step_event, write_events


def test_times_between_and_beyond_the_knots() -> None:
    c = StepClock()
    assert c.times([1]) is None
    c.add([10, 20, 30], [100.0, 110.0, 130.0])
    c.add([25, 30], [999.0, 999.0])  # not past the newest: skipped
    assert c.times([10, 15, 20, 25, 30]) == [100.0, 105.0, 110.0, 120.0, 130.0]
    assert c.times([1, 99]) == [100.0, 130.0]  # held at the ends


def test_thinning_keeps_the_cap_and_the_newest_row_exact() -> None:
    c = StepClock(cap=64)
    n = 100_000
    c.add(range(1, n + 1), [2.0 * s for s in range(1, n + 1)])
    assert len(c) < 64 and c.stride > 1
    assert c.times([1, 777, 50_001, n]) == pytest.approx([2.0, 1554.0, 100_002.0, 2.0 * n])


def test_truncate_drops_an_abandoned_branch() -> None:
    c = StepClock()
    c.add(range(1, 301), [float(s) for s in range(1, 301)])
    c.truncate(200)
    c.add([201, 250], [1000.0, 1049.0])  # the new branch, logged later
    assert c.times([200, 201, 250]) == [200.0, 1000.0, 1049.0]


def _branched(run_dir: Path, index: bool) -> Path:
    """Steps 1-300 at 1 s each, then a resume from step 200 an hour later: steps 201-260."""
    evs = [run_start(), *(step_event(s) for s in range(1, 301))]
    write_events(run_dir / "events.jsonl", evs, T0, 1.0, index=index)
    later = [run_start(start=200), *(step_event(s) for s in range(201, 261))]
    write_events(run_dir / "events.jsonl", later, T0 + 3600.0, 1.0, index=index)
    return run_dir


@pytest.mark.parametrize("index", [True, False], ids=["index", "jsonl"])
def test_elapsed_follows_the_branch_rule(tmp_path: Path, index: bool) -> None:
    st = load_state(_branched(tmp_path / "run", index))
    assert st.step == 260
    got = elapsed(st, [1, 100, 200, 201, 260])
    # up to 200: the first run (step s logged s seconds after run_start); from 201 on the
    # resumed branch (run_start at +3600 s, step 200+k logged k seconds after it)
    assert got == pytest.approx([1.0, 100.0, 200.0, 3601.0, 3660.0], abs=1.0)


def test_truncate_between_knots_keeps_the_kept_step_time() -> None:
    c = StepClock()
    c.add([1, 256], [0.0, 255.0])  # one block's summary: its first and last rows
    c.truncate(100)
    assert c.times([100]) == [99.0]
    c.truncate(0)  # starts over
    assert c.times([5]) is None
