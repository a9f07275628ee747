"""The follower's own thread: file events (inotify or polling), stop and start, the
safety-net recheck. Real observer threads and the OS's file events (the unit tier checks
the follower without threads)."""

from __future__ import annotations

import os

import pytest

from nal_tui.core.feed.follow import LogFollower
from tests.followhelp import Collector, _write, append, line
from trainer.events import schema as ev


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_threaded_follow(tmp_path, polling):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(line(1))
    c = Collector()
    # A long safety-net interval, so the file events (or the polling observer) do the work.
    f = LogFollower(p, c, polling=polling, poll_interval=0.1, recheck_s=30.0)
    f.start()
    try:
        assert c.wait_steps(1) == [1]
        append(p, line(2)[:30])
        assert f.check() == 0 and c.steps == [1]  # half a line: nothing to deliver yet
        append(p, line(2)[30:] + b"".join(line(n) for n in range(3, 201)))
        assert c.wait_steps(200) == list(range(1, 201))
        os.replace(_write(tmp_path / "x.jsonl", line(1000)), p)
        with c.cond:  # woken by each batch
            c.cond.wait_for(lambda: c.steps[-1] == 1000, timeout=60)
        assert c.steps[-1] == 1000
        assert any(s.reset for _, s in c.batches)
    finally:
        f.stop()
    assert f._thread is None


def test_stop_then_start_continues_from_the_offset(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(line(1) + line(2))
    c = Collector()
    f = LogFollower(p, c, recheck_s=0.1)
    f.start()
    try:
        assert c.wait_steps(2) == [1, 2]
    finally:
        f.stop()
    append(p, line(3))
    f.start()
    try:
        assert c.wait_steps(3) == [1, 2, 3]
    finally:
        f.stop()
    assert not any(s.reset for _, s in c.batches)
    os.replace(_write(tmp_path / "y.jsonl", line(9)), p)  # replaced while stopped
    f.check()
    assert c.steps[-1] == 9 and c.batches[-1][1].reset


def test_safety_net_recheck_without_file_events(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(b"")
    c = Collector()
    f = LogFollower(p, c, recheck_s=0.1)
    f._watch = lambda: None  # as if file events were unavailable
    f.start()
    try:
        append(p, line(1))
        assert c.wait_steps(1) == [1]
    finally:
        f.stop()
