"""A reader's index built in a child process (``reindex.build_in_child``): the dashboard's
way, so its UI thread keeps the interpreter; a reader that stops waiting ends the child
and no temp file is left."""

from __future__ import annotations

import os
import sys

import pytest

from nal_tui.core.feed import reindex
from nal_tui.core.feed.follow import LogFollower
from nal_tui.core.feed.loader import load_history
from nal_tui.core.feed.reindex import build_in_child
from nal_tui.core.reducer.state import RunState
from tests.factory import T0, record, run_start, step_event
from trainer.events import index as ix
from trainer.events.codec import encode


def _log(tmp_path, n):
    path = tmp_path / "events.jsonl"
    lines = [encode(record(run_start(target=n + 10), T0))]
    lines += [encode(record(step_event(s), T0 + s)) for s in range(1, n + 1)]
    path.write_bytes(b"".join(lines))
    return path


def test_the_child_builds_the_index_the_load_goes_through_and_leaves(tmp_path):
    path = _log(tmp_path, 3000)
    st, f = RunState(), LogFollower(path, lambda r, s: None)
    load_history(f, st, build=build_in_child())
    assert f.used_index and st.step == 3000 and st.target_step == 3010
    with open(ix.index_path(path), "rb") as fi, open(path, "rb") as fj:
        blocks, _ = ix.scan(fi.fileno(), fj.fileno(), path.stat().st_size)
    assert blocks[-1].jsonl_end == path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.idx", "events.jsonl"]


def test_a_reader_that_stops_ends_the_child_and_no_temp_file_stays(tmp_path):
    path = _log(tmp_path, 60_000)
    # Stop as soon as the child's temp file is there (it is being written).
    stopped = lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # noqa: E731
    assert build_in_child(stopped)(path, True) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_an_unwritable_directory_falls_back_to_parsing_the_log(tmp_path):
    path = _log(tmp_path, 500)
    tmp_path.chmod(0o555)
    try:
        st, f = RunState(), LogFollower(path, lambda r, s: None)
        load_history(f, st, build=build_in_child())
    finally:
        tmp_path.chmod(0o755)
    assert not f.used_index and st.step == 500 and not ix.index_path(path).exists()


def test_a_child_that_cannot_run_falls_back_to_parsing_the_log(tmp_path, monkeypatch):
    path = _log(tmp_path, 500)
    monkeypatch.setattr(reindex.sys, "executable", str(tmp_path / "no-python"))
    st, f = RunState(), LogFollower(path, lambda r, s: None)
    load_history(f, st, build=build_in_child())
    assert not f.used_index and st.step == 500 and not ix.index_path(path).exists()
    monkeypatch.setattr(reindex.sys, "executable", sys.executable)
    # A child that fails (the log is gone by the time it runs) says so and builds nothing.
    assert build_in_child()(tmp_path / "gone.jsonl", False) is None
