"""Bulk history loading (nal_tui.history): the same run state as feeding records one by one."""

from __future__ import annotations

import math
import os

import pytest

from nal_tui import history
from nal_tui.follow import LogFollower, parse_lines
from nal_tui.state import ALERT_GARBLED, RunState
from trainer import events as ev

T0 = 1_700_000_000.0


def _start(t: float, step: int, target: int = 3000) -> bytes:
    e = ev.RunStart(
        run_id=f"r{step}",
        pid=4242,
        config_path="c.yaml",
        start_step=step,
        target_step=target,
        world_size=1,
        device="cpu",
        versions={},
        run_name="bulk",
        recon_loss="mrstft",
        checkpoint_every=100,
        val_every=50,
        milestone_every=250,
    )
    return ev.encode(e.to_record(t))


def _step(n: int, t: float, **losses: float) -> bytes:
    vals = dict(g=10.0 + (n % 13) * 0.5, d=2.0 + (n % 7) * 0.1, stft=1.0, adv=2.5, fm=4.0)
    vals.update(losses)
    e = ev.Step(
        step=n,
        epoch=1 + n // 500,
        recon="mrstft",
        lr_g=2e-4,
        lr_d=2e-4,
        step_time=0.2,
        samples_per_s=80.0 + n % 3,
        **vals,
    )
    return ev.encode(e.to_record(t))


def _other(e: ev.Event, t: float) -> bytes:
    return ev.encode(e.to_record(t))


def write_log(path, n: int = 1200, resume_at: int = 700, resume_to: int = 600) -> bytes:
    """A log with every kind of line the loader must get right; returns the partial tail."""
    out = [_start(T0, 0)]
    t = T0
    step = 0
    resumed = False
    while step < n:
        step += 1
        t += 0.2
        losses = {}
        if step in (77, 78, 901):
            losses = {"g": math.nan, "d": math.nan}  # written as "nan" strings
        if step == 333:
            losses = {"fm": math.inf, "stft": 1e6}  # an infinity and a spike
        if 400 <= step < 470:
            losses = {"d": 0.001}  # D collapse
        if step == 550:  # a step record in another key order
            out.append(
                b'{"event":"step","v":1,"t":%r,"step":550,"epoch":2,"g":1,"d":2,"stft":3,'
                b'"adv":4,"fm":5,"recon":"mrstft","lr_g":0,"lr_d":0,"step_time":0.2,'
                b'"samples_per_s":80}\n' % t
            )
            out.append(b'{"v":1,"event":"step","t":%r,"step":551,"epoch":2}\n' % (t + 0.01))
        else:
            out.append(_step(step, t, **losses))
        if step % 50 == 0:
            val = ev.Val(step=step, losses={"stft": 0.9, "mel_l1": math.nan}, samples=["a.wav"])
            out.append(_other(val, t + 1.0))
            t += 1.0
        if step % 100 == 0:
            ck = ev.Checkpoint(step=step, path=f"c{step}.pt", bytes=10, sha256="ab", duration=0.5)
            out.append(_other(ck, t + 0.5))
            t += 0.5
        if step == 250:
            out.append(_other(ev.Milestone(step=250, name="quarter"), t))
        if step == 78:
            alert = ev.Alert(kind=ev.ALERT_NONFINITE, step=78, message="skip", level="error")
            out.append(_other(alert, t))
        if step == 500:
            out.append(b'{"v":1,"event":"step","t":12, "broken\n')  # garbled
            out.append(b"\n")  # blank: harmless
            out.append(b"[1, 2]\n")  # JSON, not a record: garbled
        if step == resume_at and not resumed:  # died; resumed from an earlier checkpoint
            resumed = True
            t += 30.0
            step = resume_to
            out.append(_start(t, step))
        if step == 1000:  # a step going backwards without a run_start
            out.append(_step(990, t + 0.1))
    out.append(_other(ev.RunEnd(step=n, status="stopped", reason="signal", exit_code=0), t + 1))
    partial = b'{"v":1,"event":"step","t":%r,"step":%d' % (t + 2, n + 1)
    with open(path, "wb") as f:
        f.write(b"".join(out) + partial)
    return partial


def one_by_one(path) -> RunState:
    """The reference: every complete line parsed and fed on its own."""
    s = RunState(milestone_every=None)
    data = open(path, "rb").read()
    lines = data[: data.rfind(b"\n") + 1].split(b"\n")[:-1]
    for i, line in enumerate(lines):
        recs, bad, sample = parse_lines([line], i + 1, ev.EVENTS_FILE)
        if recs:
            s.feed(recs)
        s.note_garbled(bad, sample)
    return s


def _nan_safe(x):
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, (list, tuple)):
        return [_nan_safe(v) for v in x]
    return x


def snapshot(s: RunState) -> dict:
    alerts = [a for a in s.alerts if a.kind != ALERT_GARBLED]
    return {
        "step": s.step,
        "max_step": s.max_step,
        "epoch": s.epoch,
        "target": s.target_step,
        "status": s.status,
        "records": s.records,
        "first_t": s.first_t,
        "last_t": s.last_event_t,
        "garbled": s.garbled,
        "garbled_alerts": len(s.alerts) - len(alerts),
        "resumes": s.resume_steps,
        "sps": s.seconds_per_step,
        "samples": s.samples_per_s,
        "stall": s.stall_limit_s,
        "losses": {
            k: (
                _nan_safe(v.current),
                _nan_safe(v.moving_avg),
                _nan_safe(v.trend_pct),
                v.series.count,
                v.series.stored(),
                [_nan_safe(list(b)) for b in (v.series.buckets(n) for n in (7, 50, 5000))],
            )
            for k, v in s.losses.items()
        },
        "checkpoints": [(c.step, c.t, c.bytes, c.path, c.duration) for c in s.checkpoints],
        "vals": [(v.step, v.t, _nan_safe(list(v.losses.items())), v.samples) for v in s.vals],
        "milestones": [(m.step, m.t, m.name) for m in s.milestones],
        "alerts": [(a.kind, a.level, a.step, a.message, a.t, a.source) for a in alerts],
        "end": (s.ended, s.end_status, s.end_reason, s.exit_code),
    }


@pytest.fixture
def log(tmp_path):
    path = tmp_path / ev.EVENTS_FILE
    partial = write_log(path)
    return path, partial


def test_reference_log_has_what_the_comparison_needs(log):
    path, _ = log
    ref = snapshot(one_by_one(path))
    kinds = {a[0] for a in ref["alerts"]}
    assert {"nonfinite", "d_collapse"} <= kinds
    assert ref["garbled"] == 3  # two bad lines and the step record missing its losses
    assert ref["resumes"] == [600, 990]
    assert ref["losses"]["g"][5][2][3].count(True) >= 2  # NaN buckets visible
    assert max(ref["losses"]["stft"][5][0][2]) == 1e6  # the spike survives 7 buckets
    assert ref["end"] == (True, "stopped", "signal", 0)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("chunk", [700, 4096, 1 << 20])
def test_bulk_load_equals_one_by_one(log, parallel, chunk):
    path, partial = log
    ref = one_by_one(path)
    s = RunState(milestone_every=None)
    f = LogFollower(path, lambda *_: None, chunk_bytes=chunk)
    stats = f.load_into(s, parallel=parallel)
    assert snapshot(s) == snapshot(ref)
    assert stats.garbled == 3 and "line" in stats.last_garbled
    assert stats.caught_up
    # The partial last line waits for its newline, then arrives the usual way.
    assert stats.offset == os.path.getsize(path) - len(partial)
    with open(path, "ab") as fh:
        fh.write(b',"epoch":3,"g":1,"d":1,"stft":1,"adv":1,"fm":1,"recon":"mrstft","lr_g":0,')
        fh.write(b'"lr_d":0,"step_time":0.2,"samples_per_s":80}\n')
    got = []
    f.on_records = lambda recs, _stats: got.extend(recs)
    f.check()
    assert [r["step"] for r in got] == [1201]


def test_helper_process_failure_falls_back(log, monkeypatch):
    path, _ = log
    parent = os.getpid()
    real = history._parse_range

    def flaky(fd, a, b):
        if os.getpid() != parent:
            raise RuntimeError("helper dies")
        return real(fd, a, b)

    monkeypatch.setattr(history, "_parse_range", flaky)
    s = RunState(milestone_every=None)
    LogFollower(path, lambda *_: None, chunk_bytes=2048).load_into(s, parallel=True)
    assert snapshot(s) == snapshot(one_by_one(path))


def test_blocks_round_trip_through_the_pipe_format(log):
    path, _ = log
    data = open(path, "rb").read()
    data = data[: data.rfind(b"\n") + 1]
    b = history.parse_chunk(data)
    frame = history.encode_block(7, b)
    k, meta_len, size = history._FRAME.unpack(frame[: history._FRAME.size])
    back = history.decode_block(frame[history._FRAME.size :], meta_len)
    assert k == 7 and size == len(frame) - history._FRAME.size
    assert _nan_safe(list(back.losses[0])) == _nan_safe(list(b.losses[0]))
    assert (back.steps, back.ts, back.others, back.tail) == (b.steps, b.ts, b.others, b.tail)
    assert (back.garbled, back.garbled_why, back.rejected) == (b.garbled, b.garbled_why, b.rejected)


def test_chunk_bounds_cut_at_line_starts(tmp_path):
    path = tmp_path / "x"
    lines = [b"a" * n + b"\n" for n in (3, 5000, 1, 70000, 2, 9)]
    path.write_bytes(b"".join(lines))
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        for chunk in (1, 10, 4096, 1 << 20):
            bounds = history.chunk_bounds(fd, 0, size, chunk)
            assert bounds[0] == 0 and bounds[-1] == size
            assert all(a < b for a, b in zip(bounds, bounds[1:], strict=False))
            data = path.read_bytes()
            assert all(data[b - 1 : b] == b"\n" for b in bounds[1:])
    finally:
        os.close(fd)


def test_block_from_records_keeps_odd_step_records_out():
    recs = [ev.loads(_step(1, T0)), ev.loads(_step(2, T0 + 1))]
    recs[1]["step"] = 2.5  # not an integer: the reducer cannot place it
    s = RunState()
    s.feed(recs)
    assert s.step == 1 and s.garbled == 1 and "integer" in s.garbled_sample


def test_load_into_after_truncation_starts_over(tmp_path):
    path = tmp_path / ev.EVENTS_FILE
    path.write_bytes(_start(T0, 0) + b"".join(_step(n, T0 + n) for n in range(1, 300)))
    s = RunState()
    f = LogFollower(path, lambda *_: None, chunk_bytes=1000)
    f.load_into(s, parallel=True)
    assert s.step == 299
    path.write_bytes(_start(T0 + 999, 0) + b"".join(_step(n, T0 + 999 + n) for n in range(1, 40)))
    stats = f.load_into(s, parallel=False)
    assert stats.resets == 1 and s.step == 39 and s.records == 40 and s.resume_steps == []
    assert s.losses["g"].series.count == 39


def test_no_helper_process_when_fork_fails(log, monkeypatch):
    path, _ = log

    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    s = RunState(milestone_every=None)
    LogFollower(path, lambda *_: None, chunk_bytes=2048).load_into(s, parallel=True)
    assert snapshot(s) == snapshot(one_by_one(path))
