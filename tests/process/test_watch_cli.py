"""``nal-tui watch`` as a real process against a real HTTP server on 127.0.0.1 receiving
Apprise ``json://`` posts; the run logs are written by the trainer's own EventWriter
(tests.factory). The real trainer's crash and non-finite runs: tests/integration."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nal_tui.core.watch.hooks import run_hook
from tests.factory import append_raw, run_end, run_start, step_event, wait_for, write_events
from tests.watchhelp import PostSink, nal_tui_cmd, start_watch, stop_watch
from trainer.events import schema as ev

NAN = float("nan")


@pytest.fixture
def sink():
    s = PostSink()
    yield s
    s.close()


def _log(run: Path, events: list[ev.Event]) -> None:
    write_events(run / ev.EVENTS_FILE, events, time.time(), 0.01)


def _steps(first: int, last: int, nan_at: tuple[int, ...] = ()) -> list[ev.Step]:
    return [step_event(s, g=NAN if s in nan_at else 5.0) for s in range(first, last + 1)]


def _kinds(sink: PostSink, word: str) -> list[str]:
    return [t for t in sink.titles() if word in t]


def _hook_cmd(out: Path) -> str:
    """A hook that appends its environment and its stdin (one JSON line) to ``out``."""
    script = (
        "import json,os,sys; d=json.loads(sys.stdin.read()); "
        "d['_env']={k: os.environ.get(k) for k in "
        "('NAL_RUN_DIR','NAL_ALERT_KIND','NAL_ALERT_LEVEL','NAL_STEP')}; "
        f"open({str(out)!r},'a').write(json.dumps(d)+chr(10))"
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"


def _hook_lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []


def test_each_alert_once_hook_json_restart_sends_nothing_twice(sink, tmp_path: Path) -> None:
    run, hook_out, out = tmp_path / "run", tmp_path / "hook.jsonl", tmp_path / "watch.out"
    args = [str(run), "--window", "0", "--on-alert", _hook_cmd(hook_out), "--on-end",
            _hook_cmd(tmp_path / "end.jsonl")]  # fmt: skip
    # The run dir does not exist yet: the watcher waits for it. The URL comes from the
    # environment, so it is in neither the command line nor the output.
    p = start_watch(args, out, NAL_NOTIFY_URLS=sink.url)
    try:
        assert wait_for(lambda: "watching" in out.read_text(), 60), out.read_text()
        _log(run, [run_start(target=100, run_id="A"), *_steps(1, 20, nan_at=(5, 6))])
        assert sink.wait(lambda ps: len(ps) >= 2), (sink.titles(), out.read_text())
        assert wait_for(lambda: len(_hook_lines(hook_out)) >= 2, 60), out.read_text()
    finally:
        assert stop_watch(p) == 0
    assert len(_kinds(sink, "run started")) == 1
    assert len(_kinds(sink, "nonfinite at step 5/100")) == 1, sink.titles()
    nf = [h for h in _hook_lines(hook_out) if h["kind"] == ev.ALERT_NONFINITE]
    assert len(nf) == 1
    h = nf[0]
    assert h["_env"] == {"NAL_RUN_DIR": str(run), "NAL_ALERT_KIND": "nonfinite",
                         "NAL_ALERT_LEVEL": "error", "NAL_STEP": "5"}  # fmt: skip
    assert h["run_dir"] == str(run) and h["step"] == 5 and h["target_step"] == 100
    assert h["level"] == "error" and "g=nan" in h["message"]
    assert f"nal-tui resume --run-dir {run}" in h["action"]
    assert h["losses"]["d"] == 3.0 and h["status"] == "running" and h["version"] == 1
    body = next(pp["message"] for pp in sink.posts if "nonfinite" in pp["title"])
    assert "last losses: g 5" in body and f"nal-tui resume --run-dir {run}" in body
    assert sink.url not in out.read_text() and "json://…#" in out.read_text()
    # While the watcher is down: another non-finite stretch and the run's end.
    _log(run, [*_steps(21, 30, nan_at=(25,)), run_end(30, ev.STATUS_FAILED, 4)])
    p = start_watch(args, out, NAL_NOTIFY_URLS=sink.url)
    try:
        assert sink.wait(lambda ps: any("run ended" in x["title"] for x in ps))
        assert wait_for(lambda: (tmp_path / "end.jsonl").exists(), 60)
    finally:
        assert stop_watch(p) == 0
    titles = sink.titles()
    assert len(titles) == len(set(titles)) == 4, titles  # start, 5, 25, end: none twice
    assert len(_kinds(sink, "nonfinite at step 25/100")) == 1
    end = _hook_lines(tmp_path / "end.jsonl")
    assert [(e["kind"], e["end_status"], e["exit_code"]) for e in end] == [("run_end", "failed", 4)]


def test_replaced_log_sends_the_new_runs_alerts_only(sink, tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "watch.out"
    _log(run, [run_start(run_id="A"), *_steps(1, 10)])
    p = start_watch([str(run), "--window", "0", "--notify", sink.url], out)
    try:
        assert wait_for(lambda: "watching" in out.read_text(), 60), out.read_text()
        append_raw(run / ev.EVENTS_FILE, b"\x1b]0;owned\x07 not json\n")
        assert sink.wait(lambda ps: len(ps) >= 1), out.read_text()
        new = tmp_path / "new.jsonl"
        write_events(new, [run_start(run_id="B"), *_steps(1, 8, nan_at=(3,))], time.time())
        os.replace(new, run / ev.EVENTS_FILE)
        assert sink.wait(lambda ps: any("nonfinite" in x["title"] for x in ps)), sink.titles()
        assert sink.wait(lambda ps: any("run started" in x["title"] for x in ps))
    finally:
        assert stop_watch(p) == 0
    titles = sink.titles()
    # The first watch found run A under way: its start is not news; the garbled line is,
    # cleaned of its escape sequence; then run B's start and non-finite step, once each.
    assert [t.split(": ", 1)[1] for t in titles] == [
        "garbled at step 10/1,000", "run started at step 0/1,000", "nonfinite at step 3/1,000",
    ], titles  # fmt: skip
    garbled = sink.posts[0]["message"]
    assert "\x1b" not in garbled and "\x07" not in garbled and "not json" in garbled


def test_server_failing_three_times_then_ok_gets_the_alert(tmp_path: Path) -> None:
    sink = PostSink(codes=[500, 500, 500])
    run, out = tmp_path / "run", tmp_path / "watch.out"
    try:
        p = start_watch([str(run), "--notify", sink.url, "--retry-for", "120"], out)
        try:
            assert wait_for(lambda: "watching" in out.read_text(), 60), out.read_text()
            _log(run, [run_start(run_id="A"), *_steps(1, 5, nan_at=(2,))])
            assert sink.wait(lambda ps: len(ps) >= 2), (sink.attempts, out.read_text())
        finally:
            assert stop_watch(p) == 0
        assert sink.attempts == 5  # 3 refused, then the run start and the alert
        assert len(_kinds(sink, "run started")) == 1 and len(_kinds(sink, "nonfinite")) == 1
        assert "given up" not in out.read_text()
    finally:
        sink.close()


def test_hook_that_sleeps_forever_is_killed(sink, tmp_path: Path) -> None:
    run, out, pidf = tmp_path / "run", tmp_path / "watch.out", tmp_path / "hook.pid"
    hook = f"echo $$ > {shlex.quote(str(pidf))}; exec sleep 100000"
    args = [str(run), "--notify", sink.url, "--on-alert", hook, "--hook-timeout", "2"]
    p = start_watch(args, out)
    try:
        assert wait_for(lambda: "watching" in out.read_text(), 60), out.read_text()
        _log(run, [run_start(run_id="A"), *_steps(1, 5, nan_at=(2,))])
        assert wait_for(lambda: "still running after 2 s: killed" in out.read_text(), 120), (
            out.read_text()
        )
        pid = int(pidf.read_text())
        assert wait_for(lambda: not psutil.pid_exists(pid), 60)
        # The notifications went out meanwhile (the hook runs in its own worker).
        assert sink.wait(lambda ps: len(ps) >= 2)
    finally:
        assert stop_watch(p) == 0
    # Reported once, though both notices ran the hook.
    assert out.read_text().count("hook --on-alert failed") == 1, out.read_text()


def _once(run: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(nal_tui_cmd() + ["watch", str(run), "--once", *extra],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_once_health_codes(tmp_path: Path) -> None:
    healthy, warn, bad, done = (tmp_path / n for n in ("healthy", "warn", "bad", "done"))
    _log(healthy, [run_start(), *_steps(1, 20)])
    _log(warn, [run_start(), *_steps(1, 20)])
    append_raw(warn / ev.EVENTS_FILE, b"garbage\n")
    _log(bad, [run_start(), *_steps(1, 20, nan_at=(4,))])
    _log(done, [run_start(), *_steps(1, 20), run_end(20)])
    assert _once(healthy).returncode == 0
    r = _once(warn)
    assert r.returncode == 1 and "garbled" in r.stdout
    r = _once(bad)
    assert r.returncode == 2 and "nonfinite at step 4" in r.stdout
    assert _once(done).returncode == 3
    assert _once(tmp_path / "nothing-yet").returncode == 3
    r = subprocess.run(nal_tui_cmd() + ["watch", str(healthy), str(bad), "--once"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2


def test_failing_hook_reported_once_and_bad_urls_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _log(run, [run_start()])
    assert _once(run).returncode == 0  # a first watch: what is there is not news
    _log(run, _steps(1, 20, nan_at=(3, 9, 15)))
    r = _once(run, "--window", "0", "--on-alert", "echo broken >&2; exit 3")
    assert r.returncode == 2
    assert r.stderr.count("hook --on-alert failed: exit code 3 (broken)") == 1, r.stderr
    state = json.loads((run / "watch.json").read_text())
    assert sum("exit code 3" in f for f in state["failures"]) == 3
    bad = _once(run, "--notify", "nosuchscheme://secret-token@host/x")
    assert bad.returncode == 2 and "secret-token" not in bad.stderr + bad.stdout
    assert "is not one Apprise can use" in bad.stderr


def test_hook_gets_strict_json_when_a_loss_is_nan(tmp_path: Path) -> None:
    # The non-finite alert's own payload holds NaN losses: bare NaN is not JSON (jq and
    # JSON.parse refuse it), so the hook gets the log's own spelling, "nan".
    out = tmp_path / "hook.json"
    payload = {"kind": ev.ALERT_NONFINITE, "step": 9, "losses": {"g": math.nan, "d": 0.5},
               "best": {"score": math.inf}}  # fmt: skip
    res = run_hook(f"cat > {shlex.quote(str(out))}", payload, timeout_s=60)
    assert res.ok, res

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    got = json.loads(out.read_text(), parse_constant=refuse)
    assert got["losses"] == {"g": "nan", "d": 0.5} and got["best"] == {"score": "inf"}


def test_once_reports_a_gradient_spike(tmp_path: Path) -> None:
    """The watcher runs the dashboard's detectors: a G norm x40 its median is reported."""
    run = tmp_path / "spiky"
    gn = [step_event(s, g=5.0, grad_norm_g=40.0 if s == 1500 else 1.0, grad_norm_d=0.5)
          for s in range(1, 1600)]  # fmt: skip
    _log(run, [run_start(target=2000), *gn])
    r = _once(run)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "grad_spike at step 1500" in r.stdout and "G gradient norm spike" in r.stdout
    steady = tmp_path / "steady"
    _log(steady, [run_start(target=2000), *[step_event(s, g=5.0, grad_norm_g=1.0 + s / 100, grad_norm_d=0.5)
                                 for s in range(1, 1600)]])  # fmt: skip
    assert _once(steady).returncode == 0
