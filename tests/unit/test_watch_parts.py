"""The watcher's pure parts: URL masking and sources, dedup windows, what a notice says,
the state file, health codes, alert keys (no process, no sleep)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from nal_tui.core.reducer.state import RunState
from nal_tui.core.watch.dedup import Dedup
from nal_tui.core.watch.notice import Notice, describe, settle
from nal_tui.core.watch.notifiers import Notifier, NotifyConfigError, gather_urls, mask_url
from nal_tui.core.watch.runwatch import RunWatch
from nal_tui.core.watch.store import StoreError, WatchStore
from nal_tui.core.watch.watcher import (
    ERRORS,
    HEALTHY,
    NOT_RUNNING,
    WARNINGS,
    Watcher,
    WatchOptions,
    health,
    worst,
)
from tests.factory import T0, checkpoint_record, record, records, run_end, run_start, steps
from trainer.events import schema as ev


def test_mask_url_hides_every_secret_but_tells_urls_apart() -> None:
    a = mask_url("slack://TokenA/TokenB/TokenC")
    b = mask_url("json://user:hunter2@example.org:8080/path")
    assert a.startswith("slack://…#") and "Token" not in a
    assert b.startswith("json://…#") and "hunter2" not in b and "example" not in b
    assert a != mask_url("slack://TokenA/TokenB/TokenD")
    assert mask_url("no scheme at all").startswith("?://")


def test_urls_from_flags_files_and_env(tmp_path: Path) -> None:
    f = tmp_path / "urls"
    f.write_text("# mine\njson://a/x\n\n  ntfy://topic  \n")
    urls = gather_urls(["json://a/x"], [f], {"NAL_NOTIFY_URLS": "mailto://u:p@h, json://b"})
    assert urls == ["json://a/x", "ntfy://topic", "mailto://u:p@h", "json://b"]
    with pytest.raises(NotifyConfigError, match="cannot read notify file"):
        gather_urls([], [tmp_path / "missing"], {})


def _n(kind: str = "nonfinite", step: int = 5, level: str = "error") -> Notice:
    return Notice(f"{kind}|{step}", Path("logs/x"), kind, level, step, f"at {step}", T0 + step)


def test_dedup_one_per_kind_per_window_then_and_n_more(tmp_path: Path) -> None:
    store, d = WatchStore(tmp_path), Dedup(window_s=60, min_level="info")
    assert d.offer(store, _n(step=1), 1000.0)
    assert not d.offer(store, _n(step=2), 1010.0)
    assert not d.offer(store, _n(step=3), 1020.0)
    assert d.offer(store, _n("d_collapse", 4, "warning"), 1020.0)  # another kind
    assert d.offer(store, _n("run_start", 0, "info"), 1020.0)
    assert d.offer(store, _n("run_start", 0, "info"), 1021.0)  # never held back
    assert d.due(store, _n(), 1059.0) == []
    (summary, count), = d.due(store, _n(), 1061.0)  # fmt: skip
    assert count == 2 and summary.kind == "nonfinite" and summary.step == 3
    assert summary.message.startswith("2 more nonfinite alerts at steps 2–3 since")
    assert d.due(store, _n(), 1200.0) == []
    assert not Dedup(60, "warning").wanted(_n("run_start", 0, "info"))
    assert Dedup(60, "warning").wanted(_n())


def _state(recs: list[dict]) -> RunState:
    s = RunState()
    s.feed(recs)
    return s


def test_notice_says_run_step_losses_best_and_what_to_do() -> None:
    recs = records([run_start(target=100, run_name="v\x1b[2Jx"), *steps(1, 10)])
    recs.append(checkpoint_record(10, best=True, metric="mel_l1", score=0.42, best_steps=[10]))
    s = _state(recs)
    title, body, payload = describe(_n(step=7), s, suppressed=3)
    assert title == "[nal error] vx: nonfinite at step 7/100"
    assert "\x1b" not in body and "run vx (logs/x), step 7/100" in body
    assert "last losses: g 50, d 3" in body.replace("49.9", "50")
    assert "best: mel_l1 0.42 at step 10" in body
    assert "and 3 more nonfinite alert(s)" in body
    assert "what to do: look at logs/x/train.log, then: nal-tui resume --run-dir logs/x" in body
    assert payload["best"] == {"metric": "mel_l1", "score": 0.42, "step": 10}
    assert payload["suppressed"] == 3 and json.dumps(payload)


def test_state_file_round_trip_and_a_garbled_one_is_set_aside(tmp_path: Path) -> None:
    s = WatchStore(tmp_path)
    assert s.load() is False
    s.mark("a|1")
    s.set_window("nonfinite", {"last_sent": 5.0, "pending": 2})
    s.save()
    t = WatchStore(tmp_path)
    assert t.load() and t.has("a|1") and t.window("nonfinite")["pending"] == 2
    (tmp_path / "watch.json").write_text("{not json")
    with pytest.raises(StoreError, match="set aside as watch.json.bad"):
        WatchStore(tmp_path).load()
    assert (tmp_path / "watch.json.bad").read_text() == "{not json"
    assert WatchStore(tmp_path).load() is False
    gone = WatchStore(tmp_path / "not-yet")
    gone.mark("x")
    gone.save()  # a run dir that does not exist is not created
    assert not (tmp_path / "not-yet").exists()


def test_health_codes() -> None:
    now = T0 + 100
    ok = _state(records([run_start(), *steps(1, 10)], t0=now - 5))
    ok.refresh(now)
    assert health(ok)[0] == HEALTHY
    nan = _state(records([run_start(), *steps(1, 3), *steps(4, 4, g=float("nan"))], t0=now - 5))
    nan.refresh(now)
    code, why = health(nan)
    assert code == ERRORS and "nonfinite at step 4" in why[0]
    warn = _state(records([run_start(), *steps(1, 3)], t0=now - 5))
    warn.note_garbled(1, "line 9: bad")
    warn.refresh(now)
    assert health(warn)[0] == WARNINGS
    done = _state(records([run_start(), *steps(1, 3), run_end(3)], t0=now - 5))
    assert health(done)[0] == NOT_RUNNING
    assert worst([HEALTHY, NOT_RUNNING, WARNINGS]) == WARNINGS
    assert worst([NOT_RUNNING, ERRORS]) == ERRORS and worst([HEALTHY, NOT_RUNNING]) == 3


def test_keys_are_stable_across_a_reread_and_duplicate_alerts_fold(tmp_path: Path) -> None:
    recs = records([run_start(), *steps(1, 3), *steps(4, 4, g=float("nan"))])
    alert = ev.Alert(kind="nonfinite", step=4, message="non-finite", level="error")
    recs.append(record(alert, T0 + 1))
    keys = []
    for _ in range(2):
        rw = RunWatch(tmp_path, threading.Event())
        rw.state.feed(recs)
        keys.append([n.key for n in rw.new_notices()])
    assert keys[0] == keys[1]
    assert sum(k.startswith("nonfinite") for k in keys[0]) == 1  # the trainer's and ours


class _Catch(Notifier):
    name = "catch"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, title: str, body: str, level: str) -> None:
        self.sent.append((title, body, level))


def _recovered_run() -> list[dict]:
    """Non-finite losses at steps 7, 9 and 11; the trainer goes back to step 8's
    checkpoint and completes at step 14 (train.recover)."""
    nan = float("nan")
    events: list[ev.Event] = [run_start(target=14), *steps(1, 6), *steps(7, 7, g=nan)]
    events += [*steps(8, 8), *steps(9, 9, g=nan), *steps(10, 10), *steps(11, 11, g=nan)]
    events.append(ev.Recovery(step=8, from_step=11, trigger="nonfinite", checkpoint="ckpt",
                              lr_g=1e-4, lr_d=1e-4, recoveries=1, max_recoveries=3))  # fmt: skip
    return records([*events, *steps(9, 14), run_end(14)])


@pytest.mark.parametrize("end", [True, False])
def test_a_late_summary_says_the_run_recovered_and_advises_no_resume(
    tmp_path: Path, end: bool
) -> None:
    """The "N more" summary sent after the window (here: after the run recovered, and
    maybe completed) says what became of the run, counts once and does not say resume."""
    recs = _recovered_run()
    if not end:
        recs = recs[:-1]
    cut = next(i for i, r in enumerate(recs) if r["event"] == ev.Recovery.EVENT)
    catch = _Catch()
    w = Watcher([tmp_path], [catch], WatchOptions(window_s=600), say=lambda _: None,
                warn=lambda _: None)  # fmt: skip
    rw = w.runs[0]
    try:
        rw.state.feed(recs[:cut])
        w.tick(1000.0)  # the first nonfinite goes out, steps 9 and 11 are held back
        rw.state.feed(recs[cut:])
        w.tick(1010.0)
        assert w.sender.drain(30)
        n_before = len(catch.sent)
        w.tick(1700.0)  # the window closed: the summary
        assert w.sender.drain(30)
    finally:
        w.sender.stop()
    titles = [t for t, _, _ in catch.sent]
    assert sum("nonfinite at step 7/14" in t for t in titles) == 1, titles
    (title, body, level), = catch.sent[n_before:]  # fmt: skip
    assert title == "[nal info] demo: 2 more nonfinite alerts at steps 9–11", title
    status = "completed" if end else "is running"
    assert f"the run recovered at step 8 and {status}" in body, body
    assert "now at step 14/14" in body
    assert "resume" not in body and level == "info"
    assert body.count("2 more") == 1 and "more nonfinite alert(s) in this window" not in body


def test_a_summary_of_a_run_still_failing_keeps_its_level_and_advice(tmp_path: Path) -> None:
    store, d = WatchStore(tmp_path), Dedup(window_s=60)
    nan = float("nan")
    s = _state(records([run_start(target=100), *steps(1, 3), *steps(4, 4, g=nan),
                        run_end(4, ev.STATUS_FAILED, 4)]))  # fmt: skip
    d.offer(store, _n(step=2), 1000.0)
    d.offer(store, _n(step=3), 1001.0)
    d.offer(store, _n(step=4), 1002.0)
    (n, count), = d.due(store, _n(), 1100.0)  # fmt: skip
    n = settle(n, s)
    title, body, _ = describe(n, s, count)
    assert title == "[nal error] demo: 2 more nonfinite alerts at steps 3–4"
    assert "the run has since" not in body or "crashed" in body
    assert "nal-tui resume --run-dir" in body
