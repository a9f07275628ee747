"""Opening a run's backlog (``loader.load_history``, with or without ``events.idx``)
gives the same state as feeding every line on its own (ported from main's test_history)."""

from __future__ import annotations

import math
import os

import pytest

from nal_tui.core.feed.follow import LogFollower
from nal_tui.core.feed.loader import load_history, preview
from nal_tui.core.feed.reindex import build_here
from nal_tui.core.reducer.present import milestones_view, progress_view
from nal_tui.core.reducer.state import RunState
from tests.factory import T0
from trainer.events import index as ix
from trainer.events import schema as ev
from trainer.events.codec import encode
from trainer.events.indexwrite import build_index
from trainer.events.parse import parse_lines


def _start(t: float, step: int, target: int = 3000) -> bytes:
    e = ev.RunStart(
        run_id=f"r{step}", pid=4242, config_path="c.yaml", start_step=step, target_step=target,
        world_size=1, device="cpu", versions={}, run_name="bulk", recon_loss="mrstft",
        checkpoint_every=100, val_every=50, milestone_every=250,
    )  # fmt: skip
    return encode(e.to_record(t))


def _step(n: int, t: float, **losses: float) -> bytes:
    vals = dict(g=10.0 + (n % 13) * 0.5, d=2.0 + (n % 7) * 0.1, stft=1.0, adv=2.5, fm=4.0)
    vals.update(losses)
    e = ev.Step(step=n, epoch=1 + n // 500, recon="mrstft", lr_g=2e-4, lr_d=2e-4,
                step_time=0.2, samples_per_s=80.0 + n % 3, **vals)  # fmt: skip
    return encode(e.to_record(t))


def _other(e: ev.Event, t: float) -> bytes:
    return encode(e.to_record(t))


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
        if step == 550:  # a step record in another key order, then one missing its losses
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
    s = RunState()
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
    alerts = [a for a in s.alerts.rows if a.kind != ev.ALERT_GARBLED]
    p = s.progress
    return {
        "step": s.step, "max_step": p.max_step, "epoch": p.epoch, "target": s.target_step,
        "status": s.status, "records": s.records, "first_t": s.first_t,
        "last_t": s.last_event_t, "garbled": s.garbled,
        "garbled_alerts": len(s.alerts.rows) - len(alerts), "resumes": s.branches.resume_steps,
        "progress": _nan_safe(list(progress_view(s).__dict__.values())),
        "stall": s.stall.limit(p.usual_interval, p.last_pause_s),
        "losses": {
            k: (
                _nan_safe(v.current), _nan_safe(v.moving_avg), _nan_safe(v.trend_pct), len(v.series),
                [_nan_safe(list(b)) for b in (v.series.buckets(n) for n in (7, 50, 5000))],
            )  # fmt: skip
            for k, v in s.losses.items()
        },
        "checkpoints": [(c["step"], c["t"], c["path"]) for c in s.checkpoints.events],
        "vals": [_nan_safe([v.step, v.duration, list(v.losses), v.samples]) for v in s.validation.views],
        "milestones": milestones_view(s),
        "alerts": [(a.kind, a.level, a.step, a.message, a.t, a.source) for a in alerts],
        "end": (s.ended, s.end_status, s.end_reason, s.exit_code),
    }  # fmt: skip


@pytest.fixture
def log(tmp_path):
    path = tmp_path / ev.EVENTS_FILE
    partial = write_log(path)
    return path, partial


def test_reference_log_has_what_the_comparison_needs(log):
    path, _ = log
    ref = snapshot(one_by_one(path))
    kinds = {a[0] for a in ref["alerts"]}
    assert {"nonfinite", "d_collapse", "steps_backwards"} <= kinds
    assert ref["garbled"] == 3  # two bad lines and the step record missing its losses
    assert ref["resumes"] == [600]
    assert ref["losses"]["g"][4][2][3].count(True) >= 2  # NaN buckets visible
    assert max(ref["losses"]["stft"][4][0][2]) == 1e6  # the spike survives 7 buckets
    assert ref["end"] == (True, "stopped", "signal", 0)


@pytest.mark.parametrize("chunk", [700, 4096, 1 << 20])
@pytest.mark.parametrize("index", ["jsonl", "index", "built"])
def test_bulk_load_equals_one_by_one(log, chunk, index):
    """jsonl: parsed line by line; index: through the trainer's index; built: through the
    index the loader builds for a log that has none (and leaves behind)."""
    path, partial = log
    if index == "index":
        assert build_index(path) > 0
    ref = one_by_one(path)
    s = RunState()
    f = LogFollower(path, lambda *_: None, chunk_bytes=chunk, batch_lines=97)
    stats = load_history(f, s, build=None if index == "jsonl" else build_here)
    indexed = index != "jsonl"
    assert f.used_index == indexed and ix.index_path(path).exists() == indexed
    assert snapshot(s) == snapshot(ref)
    assert stats.garbled == (0 if indexed else 3) and s.garbled == 3
    assert "line" in s.garbled_sample
    # The partial last line waits for its newline, then arrives the usual way.
    assert stats.offset == os.path.getsize(path) - len(partial)
    with open(path, "ab") as fh:
        fh.write(b',"epoch":3,"g":1,"d":1,"stft":1,"adv":1,"fm":1,"recon":"mrstft","lr_g":0,')
        fh.write(b'"lr_d":0,"step_time":0.2,"samples_per_s":80}\n')
    got = []
    f.on_records = lambda recs, _stats: got.extend(recs)
    f.check()
    assert [r["step"] for r in got] == [1201]


def test_load_history_after_truncation_starts_over(tmp_path):
    path = tmp_path / ev.EVENTS_FILE
    path.write_bytes(_start(T0, 0) + b"".join(_step(n, T0 + n) for n in range(1, 300)))
    s = RunState()
    f = LogFollower(path, lambda *_: None, chunk_bytes=1000)
    load_history(f, s)
    assert s.step == 299
    path.write_bytes(_start(T0 + 999, 0) + b"".join(_step(n, T0 + 999 + n) for n in range(1, 40)))
    stats = load_history(f, s)
    assert stats.resets == 1 and s.step == 39 and s.records == 40 and s.branches.resume_steps == []
    assert len(s.losses["g"].series) == 39


def test_preview_shows_the_newest_step_and_run_from_the_end_only(log):
    path, _ = log
    ref = one_by_one(path)
    p = preview(path)
    assert p.step == ref.step and p.target_step == ref.target_step
    assert p.losses["g"].current == ref.losses["g"].current
    assert 0 < p.records < ref.records  # the end, not the history
