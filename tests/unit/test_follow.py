"""The follower on its own: offsets, partial lines, bursts, truncation, replacement, rotation."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from nal_tui.core.feed.follow import LogFollower
from nal_tui.core.feed.tail import read_tail
from nal_tui.core.reducer.state import RunState
from tests.followhelp import T0, Collector, append, line
from trainer.events import schema as ev
from trainer.events.codec import encode

REPO = Path(__file__).resolve().parents[2]


def test_partial_line_waits_for_its_newline(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    full = line(1) + line(2)
    half = line(3)[:40]
    p.write_bytes(full + half)
    f = LogFollower(p, Collector())
    assert [r["step"] for r in f.read_available()] == [1, 2]
    assert f.stats.offset == len(full)
    assert f.read_available() == []  # still half a line
    append(p, line(3)[40:])
    assert [r["step"] for r in f.read_available()] == [3]
    assert f.stats.offset == p.stat().st_size and f.stats.garbled == 0


def test_burst_is_batched_and_fully_consumed(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(b"")
    c = Collector()
    f = LogFollower(p, c, batch_lines=1000, chunk_bytes=64 << 10)
    f.check()
    append(p, b"".join(line(n) for n in range(1, 10_001)))
    assert f.check() == 10_000
    sizes = [len(recs) for recs, _ in c.batches if recs]
    assert max(sizes) <= 1000 and len(sizes) >= 10
    assert c.steps == list(range(1, 10_001))
    assert c.batches[-1][1].caught_up and not any(s.reset for _, s in c.batches)


def test_truncation_restarts_from_zero_with_reset(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(b"".join(line(n) for n in range(1, 101)))
    c = Collector()
    f = LogFollower(p, c)
    f.check()
    with open(p, "wb") as fh:  # truncate in place (same inode)
        fh.write(line(7) + line(8))
    c.batches.clear()
    f.check()
    recs, stats = c.batches[0]
    assert stats.reset and [r["step"] for r in recs] == [7, 8]
    assert stats.resets == 1 and stats.offset == p.stat().st_size


def test_rewrite_larger_than_offset_is_noticed(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(b"".join(line(n) for n in range(1, 11)))
    c = Collector()
    f = LogFollower(p, c)
    f.check()
    with open(p, "r+b") as fh:  # rewritten in place, longer than before, before we looked
        fh.write(b"".join(line(n, T0 + 1000 + n) for n in range(101, 131)))
    c.batches.clear()
    f.check()
    assert c.batches[0][1].reset
    assert c.steps == list(range(101, 131))


def test_truncated_to_empty_still_tells_the_consumer(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(line(1))
    c = Collector()
    f = LogFollower(p, c)
    f.check()
    p.write_bytes(b"")
    c.batches.clear()
    f.check()
    assert [(len(r), s.reset) for r, s in c.batches] == [(0, True)]


def test_replacement_resets(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(b"".join(line(n) for n in range(1, 51)))
    c = Collector()
    f = LogFollower(p, c)
    f.check()
    new = tmp_path / "new.jsonl"
    new.write_bytes(line(1) + line(2) + line(3))
    os.replace(new, p)
    c.batches.clear()
    f.check()
    assert c.batches[0][1].reset
    assert c.steps == [1, 2, 3]
    assert f.stats.resets == 1 and f.stats.rotations == 0


def test_rotation_finishes_old_file_then_follows_new(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(b"".join(line(n) for n in range(1, 11)))
    c = Collector()
    f = LogFollower(p, c)
    f.check()
    append(p, line(11) + line(12))  # written just before the rotation, not yet read
    os.rename(p, tmp_path / "events.jsonl.1")
    c.batches.clear()
    f.check()  # the path is gone: the old file is still followed
    assert c.steps == [11, 12]
    p.write_bytes(line(13) + line(14))
    f.check()
    assert c.steps == [11, 12, 13, 14]
    assert not any(s.reset for _, s in c.batches)
    assert f.stats.rotations == 1


def test_deleted_log_resets(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(line(1))
    c = Collector()
    f = LogFollower(p, c)
    f.check()
    p.unlink()
    c.batches.clear()
    f.check()
    assert [(len(r), s.reset, s.missing) for r, s in c.batches] == [(0, True, True)]
    p.write_bytes(line(5))
    f.check()
    assert c.steps == [5] and not c.batches[-1][1].reset


def test_garbled_lines_counted_and_reported(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    bad_schema = encode({"v": 1, "event": "step", "t": T0})  # step without its fields
    future = encode({"v": 99, "event": "step", "t": T0})
    p.write_bytes(
        line(1) + b"{not json\n" + b"\n" + line(2) + b'["a list"]\n' + bad_schema + future + line(3)
    )
    c = Collector()
    f = LogFollower(p, c)
    f.check()
    assert c.steps == [1, 2, 3]
    stats = c.batches[-1][1]
    assert stats.garbled == 4 and stats.new_garbled == 4
    assert stats.last_garbled.startswith("events.jsonl line 7: schema version 99")
    append(p, b"oops\n" + line(4))
    c.batches.clear()
    f.check()
    assert c.steps == [4]
    stats = c.batches[-1][1]
    assert stats.garbled == 5 and stats.new_garbled == 1 and "line 9" in stats.last_garbled


def test_missing_file_then_created(tmp_path):
    p = tmp_path / "run" / ev.EVENTS_FILE
    c = Collector()
    f = LogFollower(p, c)
    assert f.read_available() == [] and f.stats.missing
    p.parent.mkdir()
    p.write_bytes(line(1))
    assert [r["step"] for r in f.read_available()] == [1]


def test_consumer_error_does_not_stop_following(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    p.write_bytes(line(1))
    seen = []

    def boom(recs, stats):
        seen.extend(recs)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    f = LogFollower(p, boom)
    f.check()
    append(p, line(2))
    f.check()
    assert [r["step"] for r in seen] == [1, 2]
    assert isinstance(f.error, RuntimeError)


def test_read_tail_preview(tmp_path):
    p = tmp_path / ev.EVENTS_FILE
    rs = ev.RunStart(
        run_id="r",
        pid=1,
        config_path="c.yaml",
        start_step=0,
        target_step=5000,
        world_size=1,
        device="cpu",
        versions={},
    )
    p.write_bytes(encode(rs.to_record(T0)) + b"".join(line(n) for n in range(1, 5001)))
    recs = read_tail(p, tail_bytes=20_000)
    assert recs[0]["event"] == "run_start"
    assert recs[-1]["step"] == 5000 and 10 < len(recs) < 200
    assert all(r["event"] == "step" for r in recs[1:])
    s = RunState()
    s.feed(recs)
    assert s.target_step == 5000 and s.step == 5000
    # A later run_start (a resume) wins over the first one; beyond scan_bytes, the first.
    rs2 = ev.RunStart(
        run_id="r2",
        pid=2,
        config_path="c.yaml",
        start_step=4000,
        target_step=9000,
        world_size=1,
        device="cpu",
        versions={},
    )
    big = line(4001) * 2000
    append(p, encode(rs2.to_record(T0 + 9000)) + big)
    assert read_tail(p, tail_bytes=20_000)[0]["run_id"] == "r2"
    assert read_tail(p, tail_bytes=20_000, scan_bytes=len(big) // 2)[0]["run_id"] == "r"


def _synth():
    spec = importlib.util.spec_from_file_location("synth_log", REPO / "bench" / "synth_log.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_synthetic_run_end_to_end(tmp_path):
    path = _synth().write_synthetic_run(tmp_path, 30_000, target_step=40_000, run_end="stopped")
    s = RunState()

    def on(recs, stats):
        if stats.reset:
            s.reset()
        s.feed(recs)

    f = LogFollower(path, on, batch_lines=5000)
    f.check()
    assert f.stats.caught_up and f.stats.garbled == 0
    assert s.step == 30_000 and s.target_step == 40_000 and s.status == "stopped"
    assert s.branches.resume_steps == [10_000]
    # Died after checkpointing 15,000, resumed from 10,000: the abandoned branch's 15,000
    # left the live view; the new branch's 15,000 is there.
    ckpts = [c["step"] for c in s.checkpoints.events]
    assert ckpts == [5000, 10_000, 15_000, 20_000, 25_000, 30_000]
    assert s.branches.abandoned[-1][:2] == (10_000, 15_000)
    nan_alerts = [a.step for a in s.alerts.rows if a.kind == "nonfinite"]
    assert nan_alerts == [8571, 12857, 12857, 21428]  # 12,857 was logged twice (resume)
    assert s.progress.seconds_per_step == pytest.approx(0.2, rel=0.1)
    steps, _mins, _maxs, mask = s.losses["g"].series.buckets(50)
    assert sum(mask) >= 3 and steps[0] == 1
