"""``nal-tui watch`` following real ``nal-train`` runs: one driven into non-finite losses
(tests/integration/inject_fault.py) until it stops with exit 4, one SIGKILLed; a real HTTP
server on 127.0.0.1 receives the Apprise ``json://`` posts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    demo_config_dict,
    nal_train_cmd,
    read_events,
    start_trainer,
    wait_for,
    write_config,
)
from tests.watchhelp import PostSink, nal_tui_cmd, start_watch, stop_watch
from trainer.events import schema as ev

FAULT_SITE = ROOT / "tests" / "integration" / "faultsite"


def _config(tmp_path: Path, corpus: Path) -> Path:
    data = demo_config_dict(
        corpus,
        log={"log_every": 1, "val_every": 1000, "val_samples": 0},
        checkpoint={"every": 1000, "milestone_every": 0},
        train={"max_nonfinite_steps": 3, "batch_size": 2},
    )
    return write_config(tmp_path / "c.yaml", data)


def _lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


@pytest.mark.slow
def test_watch_a_nonfinite_run_and_a_killed_one(demo_corpus: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path, demo_corpus)
    nan_run, kill_run = tmp_path / "nan", tmp_path / "kill"
    alerts, ends, out = tmp_path / "alerts.jsonl", tmp_path / "ends.jsonl", tmp_path / "w.out"
    sink = PostSink()
    args = [str(nan_run), str(kill_run), "--notify", sink.url,
            "--on-alert", f"cat >> {alerts}", "--on-end", f"cat >> {ends}"]  # fmt: skip
    w = start_watch(args, out)
    try:
        assert wait_for(lambda: out.read_text().count("watching") == 2, 60), out.read_text()
        env = dict(os.environ, NAL_TEST_FAULT="nonfinite:4:1000", PYTHONPATH=str(FAULT_SITE))
        t = subprocess.run(
            [*nal_train_cmd(), "train", "--config", str(cfg), "--run-dir",
             str(nan_run), "--target-step", "200"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert t.returncode == ev.EXIT_NONFINITE, t.stderr[-2000:]
        # The trainer alerts at each of the 3 non-finite steps: one notification (the
        # others wait for the dedup window), then the failed end.
        assert sink.wait(lambda ps: any("run ended" in p["title"] for p in ps)), sink.titles()
        k = start_trainer(
            ["train", "--config", str(cfg), "--run-dir", str(kill_run), "--target-step", "100000"],
            tmp_path / "k.log",
        )
        try:
            steps = lambda: [r for r in read_events(kill_run) if r["event"] == "step"]  # noqa: E731
            assert wait_for(lambda: len(steps()) >= 3, 180), (tmp_path / "k.log").read_text()
        finally:
            k.send_signal(signal.SIGKILL)
            k.wait()
        assert sink.wait(lambda ps: any("crashed" in p["title"] for p in ps)), sink.titles()
        assert wait_for(lambda: len(_lines(ends)) >= 2, 120), out.read_text()
    finally:
        assert stop_watch(w) == 0
    titles = sink.titles()
    assert len(titles) == len(set(titles)), titles
    nan_titles = [x for x in titles if "nonfinite" in x]
    assert len(nan_titles) == 1 and nan_titles[0].startswith("[nal error]"), titles
    assert sum("run started" in x for x in titles) == 2 and sum("crashed" in x for x in titles) == 1
    nf = next(a for a in _lines(alerts) if a["kind"] == ev.ALERT_NONFINITE)
    assert nf["run_dir"] == str(nan_run) and nf["step"] == 4 and nf["level"] == "error"
    end_nan, end_kill = sorted(_lines(ends), key=lambda e: e["run_dir"] != str(nan_run))
    assert end_kill["end_status"] == "crashed" and end_kill["exit_code"] is None, _lines(ends)
    assert (end_nan["kind"], end_nan["end_status"], end_nan["exit_code"]) == (
        "run_end",
        "failed",
        4,
    )
    assert end_kill["kind"] == ev.ALERT_CRASHED and end_kill["run_dir"] == str(kill_run)
    # A restarted watcher (here --once) finds nothing new to tell.
    before = len(sink.posts)
    r = subprocess.run(nal_tui_cmd() + ["watch", *args[:2], "--notify", sink.url, "--once"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr  # the killed run: crashed
    assert len(sink.posts) == before
    sink.close()
