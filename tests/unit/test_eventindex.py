"""events.idx: the binary index beside the log is a cache; the JSONL stays the truth."""

from __future__ import annotations

import math
import os

import pytest

from nal_tui.core.feed import loader
from nal_tui.core.feed.follow import LogFollower
from nal_tui.core.feed.loader import load_history
from nal_tui.core.feed.reindex import build_here
from nal_tui.core.reducer.present import losses_view, milestones_view, progress_view
from nal_tui.core.reducer.state import RunState
from tests.factory import T0, append_raw, run_end, run_start, step_event, steps, write_events
from trainer.events import index as ix
from trainer.events import indexwrite
from trainer.events import schema as ev
from trainer.events.indexwrite import install_index, refresh_index
from trainer.events.writer import EventWriter


def _load(path, use_index=True, build=None):
    idx = ix.index_path(path)
    hidden = idx.with_name("hidden.idx")
    if not use_index and idx.exists():
        os.rename(idx, hidden)
    st, f = RunState(), LogFollower(path, lambda r, s: None)
    try:
        load_history(f, st, build=build)
    finally:
        if hidden.exists():
            os.rename(hidden, idx)
    return st, f


def _digest(st: RunState, buckets: tuple[int, ...] = (7, 50, 5000), exact: bool = True):
    """Everything the panels show; ``exact``: also the chart at fine resolution (a block
    summary is one min/max band, so a summarised history matches the rows only coarsely)."""
    lv = losses_view(st)
    return (
        st.step, st.target_step, st.records, st.garbled, st.status, tuple(st.branches.resume_steps),
        [(a.kind, a.step, a.message) for a in st.alerts.rows], list(st.branches.abandoned),
        [(r.key, r.current, r.avg, r.trend_pct) for r in lv.rows],
        progress_view(st), [m.step for m in milestones_view(st).rows],
        [c["step"] for c in st.checkpoints.events], [v.step for v in st.validation.views],
        [(len(r.series) if exact else 0, [str(r.series.buckets(n)) for n in buckets])
         for r in lv.rows],
        [(k, tr.current, len(tr.series) if exact else 0,
          str(tr.series.buckets(7)) if exact else _span(tr))
         for k, tr in st.opt.items()],
    )  # fmt: skip


def _load_both(path, monkeypatch):
    """(summaries applied, state and follower through the index, state from the JSONL)."""
    calls: list[int] = []
    real = RunState.feed_summary
    monkeypatch.setattr(RunState, "feed_summary", lambda *a: calls.append(1) or real(*a))
    a, fa = _load(path)
    b, _ = _load(path, use_index=False)
    return calls, a, fa, b


def _span(track):
    """A series' smallest and largest values (a summary knows them, not their steps)."""
    e = track.series.extremes()
    return None if e is None else (e[0], e[2])


def _run(tmp_path, n=5000):
    evs = [run_start(target=n + 1000, milestone_every=1000), *steps(1, 999)]
    evs += [step_event(1000, g=math.nan), *steps(1001, 2500)]
    evs += [ev.Checkpoint(step=2500, path="checkpoints/ckpt_00002500.pt", bytes=1, sha256="-")]
    evs += [run_start(start=2000, target=n + 1000), *steps(2001, n)]
    evs += [ev.Val(step=n, losses={"mel_l1": 0.4}, samples=["a.wav"])]
    return write_events(tmp_path / "events.jsonl", evs)


def test_index_load_equals_jsonl_load(tmp_path):
    path = _run(tmp_path)
    a, fa = _load(path)
    b, fb = _load(path, use_index=False)
    assert fa.used_index and not fb.used_index
    assert _digest(a) == _digest(b)
    # The rollback to 2000 dropped the abandoned 2001..2500 (and its checkpoint) from both.
    assert a.branches.abandoned[-1][:2] == (2000, 2500) and len(a.losses["g"].series) == 5000
    assert [c["step"] for c in a.checkpoints.events] == []
    assert fa.stats.offset == fb.stats.offset == path.stat().st_size


def test_long_run_summaries_keep_figures_spikes_and_nans(tmp_path, monkeypatch):
    """A long run applies block summaries (here: any run); the figures, alerts and the
    coarse chart stay those of the rows, and a NaN and a spike stay visible."""
    monkeypatch.setattr(loader, "SUMMARY_MIN_SPAN", 0)
    evs = [run_start(target=20_000, milestone_every=100_000), *steps(1, 4999)]
    evs += [step_event(5000, g=math.nan), *steps(5001, 9999), step_event(10_000, g=1e6)]
    evs += [*steps(10_001, 15_000)]
    # A rollback deep into the summarised history, and a shallow one near the end.
    evs += [run_start(start=7000, target=20_000, milestone_every=100_000)]
    evs += [*steps(7001, 14_000, g=2.0)]
    evs += [run_start(start=13_990, target=20_000, milestone_every=100_000)]
    evs += [*steps(13_991, 16_000, g=3.0)]
    path = write_events(tmp_path / "events.jsonl", evs)
    calls, a, fa, b = _load_both(path, monkeypatch)
    assert fa.used_index and len(calls) > 40  # most blocks came from their summaries
    assert _digest(a, (7,), exact=False) == _digest(b, (7,), exact=False)
    steps_, _mins, maxs, nan = a.losses["g"].series.buckets(60)
    assert sum(nan) == 1 and max(maxs) < 1e6  # the spike at 10,000 was on an abandoned branch
    assert [x[:2] for x in a.branches.abandoned] == [(7000, 15_000), (13_990, 14_000)]


def test_garbled_lines_are_counted_through_the_index(tmp_path):
    path = _run(tmp_path, 3000)
    append_raw(path, b'{"v":1,"event":"st')  # a writer killed mid-line
    write_events(path, steps(3001, 3300))  # the next writer ends that line and catches up
    a, fa = _load(path)
    b, _ = _load(path, use_index=False)
    assert fa.used_index and a.garbled == b.garbled == 1 and a.step == b.step == 3300


def test_stale_or_damaged_index_falls_back_to_the_log(tmp_path):
    path = _run(tmp_path, 3000)
    idx = ix.index_path(path)
    data = bytearray(idx.read_bytes())
    data[ix.FILE_HEADER.size + 200] ^= 0xFF  # corrupt the first block's header
    idx.write_bytes(bytes(data))
    a, fa = _load(path)
    assert not fa.used_index and a.step == 3000
    path.write_bytes(path.read_bytes().replace(b'"run_id":"r1"', b'"run_id":"r2"', 1))
    b, fb = _load(path)  # a different log under the same index: the fingerprint differs
    assert not fb.used_index and b.step == 3000


def test_writer_catches_up_and_cuts_a_torn_index_tail(tmp_path):
    path = write_events(tmp_path / "events.jsonl", [run_start(), *steps(1, 600)])
    idx = ix.index_path(path)
    with open(idx, "ab") as f:
        f.write(b"\x00" * 37)  # a block torn by a crash
    write_events(path, steps(601, 700), index=False)  # lines the index does not cover
    write_events(path, [*steps(701, 900), run_end(900)])
    st, f = _load(path)
    assert f.used_index and st.step == 900 and st.status == "completed"
    with open(idx, "rb") as fi, open(path, "rb") as fj:
        blocks, end = ix.scan(fi.fileno(), fj.fileno(), path.stat().st_size)
    assert end == idx.stat().st_size and blocks[-1].jsonl_end == path.stat().st_size


@pytest.mark.parametrize("bad", [b"[]", b"x" * 5])
def test_an_index_that_is_not_one_is_ignored(tmp_path, bad):
    path = write_events(tmp_path / "events.jsonl", [run_start(), *steps(1, 10)])
    ix.index_path(path).write_bytes(bad)
    st, f = _load(path)
    assert not f.used_index and st.step == 10


# ---------------------------------------------------------------------------- readers' index


def _sound(path):
    """(blocks, bytes of the log covered) of the index beside ``path``; None if unusable."""
    with open(ix.index_path(path), "rb") as fi, open(path, "rb") as fj:
        got = ix.scan(fi.fileno(), fj.fileno(), path.stat().st_size)
    return None if got is None else (len(got[0]), got[0][-1].jsonl_end if got[0] else 0)


def _temp_files(d):
    return [p.name for p in d.iterdir() if p.name.endswith(".tmp")]


def test_a_reader_leaves_the_index_the_trainer_would_write(tmp_path):
    path = _run(tmp_path, 3000)
    trainers = ix.index_path(path).read_bytes()
    ix.index_path(path).unlink()
    a, fa = _load(path, build=build_here)
    assert fa.used_index and ix.index_path(path).read_bytes() == trainers
    assert _temp_files(tmp_path) == []  # built aside, swapped in: no temp file left
    b, _ = _load(path, use_index=False)
    assert _digest(a) == _digest(b)


def test_a_reader_never_writes_over_a_trainers_index(tmp_path):
    """While a trainer holds the log (its EventWriter is open), a reader's index is used
    for its own load but never put in place; the trainer's index stays whole."""
    path = _run(tmp_path, 2000)
    with EventWriter(path) as w:  # the trainer, appending
        for s in range(2001, 2300):
            w.write(step_event(s), t=T0 + s)
        w.sync()
        before = ix.index_path(path).read_bytes()
        built = refresh_index(path, fresh=True)
        assert not install_index(path, built) and not built.exists()
        assert ix.index_path(path).read_bytes() == before
        ix.index_path(path).unlink()  # even with the trainer's index gone
        st, f = _load(path, build=build_here)
        assert f.used_index and st.step == 2299 and not ix.index_path(path).exists()
        assert _temp_files(tmp_path) == []
        for s in range(2300, 2400):
            w.write(step_event(s), t=T0 + s)
    # The trainer wrote nothing more to an index it no longer has; the next reader builds.
    st, f = _load(path, build=build_here)
    assert f.used_index and st.step == 2399
    assert _sound(path)[1] == path.stat().st_size


def test_a_trainer_waits_for_a_reader_installing_then_keeps_its_index(tmp_path, monkeypatch):
    path = _run(tmp_path, 500)
    monkeypatch.setattr(indexwrite, "LOCK_WAIT_S", 0.2)
    held = indexwrite.lock_log(path, 0)  # a reader in the middle of an install
    try:
        assert indexwrite.IndexWriter.open(path, path.stat().st_size) is None
    finally:
        os.close(held)
    w = indexwrite.IndexWriter.open(path, path.stat().st_size)
    assert w is not None
    try:
        assert indexwrite.lock_log(path, 0) is None  # and now the trainer holds it
    finally:
        w.close()
    assert indexwrite.lock_log(path, 0) is not None


def test_the_swap_is_atomic_an_open_reader_keeps_the_old_index(tmp_path):
    path = _run(tmp_path, 2000)
    idx = ix.index_path(path)
    old = idx.read_bytes()
    write_events(path, steps(2001, 2600), index=False)  # the log moves on without it
    with open(idx, "rb") as reader:
        built = refresh_index(path)
        assert install_index(path, built)
        assert reader.read() == old  # a reader that had it open sees the old file, whole
    assert _sound(path)[1] == path.stat().st_size  # the new one covers the whole log


def test_a_failed_build_leaves_the_index_alone(tmp_path, monkeypatch):
    path = _run(tmp_path, 1000)
    before = ix.index_path(path).read_bytes()

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(indexwrite.IndexWriter, "_open", broken)
    with pytest.raises(OSError):
        refresh_index(path)
    assert build_here(path, False) is None
    assert ix.index_path(path).read_bytes() == before and _temp_files(tmp_path) == []


def test_a_stale_index_is_rebuilt(tmp_path, monkeypatch):
    path = _run(tmp_path, 3000)
    # A different log under the old index (same size, another first line): rebuilt.
    path.write_bytes(path.read_bytes().replace(b'"run_id":"r1"', b'"run_id":"r2"', 1))
    a, fa = _load(path, build=build_here)
    assert fa.used_index and a.step == 3000 and _sound(path)[1] == path.stat().st_size
    # Same first line, other lines where the index points (a log rewritten): rebuilt whole.
    data = path.read_bytes()
    cut = data.index(b"\n") + 1
    path.write_bytes(data[:cut] + b"\n" + data[cut:])
    b, fb = _load(path, build=build_here)
    ref, _ = _load(path, use_index=False)
    assert fb.used_index and _digest(b) == _digest(ref)
    assert _sound(path)[1] == path.stat().st_size
    # An index far behind its log (written with the index off) is brought up to date.
    monkeypatch.setattr(loader, "REFRESH_BEHIND", 1000)
    write_events(path, steps(3001, 3400), index=False)
    c, fc = _load(path, build=build_here)
    assert fc.used_index and c.step == 3400 and _sound(path)[1] == path.stat().st_size


def test_the_index_carries_learning_rates_and_gradient_norms(tmp_path, monkeypatch):
    """lr and gradient norms come through the index (rows and summaries) as from the log,
    and a gradient spike deep in a summarised history is found at its step."""
    monkeypatch.setattr(loader, "SUMMARY_MIN_SPAN", 0)
    evs = [run_start(target=20_000, milestone_every=100_000)]
    evs += [step_event(s) for s in range(1, 3000)]  # norms absent (an older trainer)
    evs += [step_event(s, lr_g=1e-3 / (1 + s // 1000), grad_norm_g=2.0, grad_norm_d=1.0)
            for s in range(3000, 9000)]  # fmt: skip
    evs[6001] = step_event(6000, grad_norm_g=90.0, grad_norm_d=1.0)
    path = write_events(tmp_path / "events.jsonl", evs)
    calls, a, fa, b = _load_both(path, monkeypatch)
    assert fa.used_index and len(calls) > 20
    assert _digest(a, (7,), exact=False) == _digest(b, (7,), exact=False)
    spikes = [x for x in a.alerts.rows if x.kind == ev.ALERT_GRAD_SPIKE]
    assert [x.step for x in spikes] == [6000]
    # Absent norms are no points (a summary knows the block that holds the first, 3000).
    assert 3000 // ix.BLOCK_STEPS == a.opt["grad_norm_g"].series.first_step // ix.BLOCK_STEPS
    assert len(a.opt["grad_norm_g"].series) == len(b.opt["grad_norm_g"].series) == 6000
    lr = a.opt["lr_g"].series.extremes()
    assert lr is not None and lr[0] == 1e-3 / 9 and lr[2] == 1e-3 / 4


def test_an_index_of_the_old_layout_is_stale_never_misread(tmp_path):
    """Format 1 (losses only) has another block layout: its file header says so, readers
    parse the log instead, and a build replaces it with the current format."""
    path = _run(tmp_path, 3000)
    idx = ix.index_path(path)
    data = bytearray(idx.read_bytes())
    magic, fmt, *_ = ix.FILE_HEADER.unpack_from(data)
    assert fmt == ix.FORMAT == 2
    ix.FILE_HEADER.pack_into(data, 0, magic, 1, *ix.FILE_HEADER.unpack_from(data)[2:])
    idx.write_bytes(bytes(data))
    with open(path, "rb") as j, open(idx, "rb") as f:
        assert ix.scan(f.fileno(), j.fileno(), os.fstat(j.fileno()).st_size) is None
    a, fa = _load(path)
    ref, _ = _load(path, use_index=False)
    assert not fa.used_index and _digest(a) == _digest(ref)
    c, fc = _load(path, build=build_here)  # rebuilt in the current format
    assert fc.used_index and _digest(c) == _digest(ref)
    assert ix.FILE_HEADER.unpack_from(idx.read_bytes())[1] == ix.FORMAT
    # The trainer's writer, opening a log with an old index, rewrites it whole too.
    idx.write_bytes(bytes(data))
    assert indexwrite.build_index(path) > 0
    assert ix.FILE_HEADER.unpack_from(idx.read_bytes())[1] == ix.FORMAT
