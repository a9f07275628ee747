"""nal-train as a real process: SIGTERM stop, a second signal mid-save, the run lock, CLI."""

from __future__ import annotations

import json
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
from trainer.config.yamlfile import load
from trainer.events import schema as ev
from trainer.rundir.checkpoints import list_checkpoints, verify_checkpoint
from trainer.rundir.lock import read_pid_file


def _config(tmp_path: Path, corpus: Path) -> Path:
    data = demo_config_dict(
        corpus,
        log={"log_every": 1, "val_every": 1000},
        checkpoint={"every": 1000, "milestone_every": 0},
    )
    return write_config(tmp_path / "c.yaml", data)


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in read_events(run) if r["event"] == "step"]


def test_sigterm_stops_cleanly_and_resume_continues(demo_corpus: Path, tmp_path: Path) -> None:
    cfg, run = _config(tmp_path, demo_corpus), tmp_path / "run"
    p = start_trainer(
        ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "100000"],
        tmp_path / "out.log",
    )
    try:
        assert wait_for(lambda: len(_steps(run)) >= 3, timeout=120), (
            tmp_path / "out.log"
        ).read_text()
        pid_info = read_pid_file(run)
        assert pid_info is not None and pid_info.pid == p.pid
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=120) == ev.EXIT_OK
    finally:
        p.kill()
    recs = read_events(run)
    end = recs[-1]
    assert end["event"] == "run_end" and end["status"] == "stopped"
    assert "SIGTERM" in end["reason"]
    stopped_at = end["step"]
    assert stopped_at == _steps(run)[-1]
    ckpts = list_checkpoints(run)
    assert [c.step for c in ckpts] == [stopped_at]
    assert verify_checkpoint(ckpts[0]) == (True, "ok")
    assert read_pid_file(run) is None  # released on exit

    out = subprocess.run(
        nal_train_cmd()
        + [
            "train",
            "--run-dir",
            str(run),
            "--resume",
            "latest",
            "--target-step",
            str(stopped_at + 2),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    recs = read_events(run)
    start = [r for r in recs if r["event"] == "run_start"][-1]
    assert start["start_step"] == stopped_at
    assert _steps(run)[-2:] == [stopped_at + 1, stopped_at + 2]


def test_second_signal_during_save_does_not_corrupt(demo_corpus: Path, tmp_path: Path) -> None:
    cfg, run = _config(tmp_path, demo_corpus), tmp_path / "run"
    p = start_trainer(
        ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "100000"],
        tmp_path / "out.log",
    )
    try:
        assert wait_for(lambda: len(_steps(run)) >= 2, timeout=120)
        p.send_signal(signal.SIGTERM)
        # Hammer it with more signals while it finishes the step and saves.
        for _ in range(40):
            if p.poll() is not None:
                break
            p.send_signal(signal.SIGINT)
            wait_for(lambda: False, timeout=0.02)
        assert p.wait(timeout=120) == ev.EXIT_OK
    finally:
        p.kill()
    ckpts = list_checkpoints(run)
    assert len(ckpts) == 1 and verify_checkpoint(ckpts[0]) == (True, "ok")
    assert read_events(run)[-1]["status"] == "stopped"


def test_lock_refuses_a_second_trainer(demo_corpus: Path, tmp_path: Path) -> None:
    cfg, run = _config(tmp_path, demo_corpus), tmp_path / "run"
    p = start_trainer(
        ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "100000"],
        tmp_path / "out.log",
    )
    try:
        assert wait_for(lambda: len(_steps(run)) >= 1, timeout=120)
        second = subprocess.run(
            nal_train_cmd()
            + ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "5"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert second.returncode == ev.EXIT_LOCKED
        assert "in use by another trainer" in second.stderr and str(p.pid) in second.stderr
        assert p.poll() is None  # the first one is untouched
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    assert read_events(run)[-1]["status"] == "stopped"


def test_summary_prints_paper_sizes() -> None:
    sizes = {}
    for v in ("v1", "v2", "v3"):
        out = subprocess.run(
            nal_train_cmd() + ["summary", "--config", f"config/hifigan_{v}.yaml"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr
        sizes[v] = json.loads(out.stdout)
    assert round(sizes["v1"]["generator"] / 1e6, 2) == 13.94
    assert round(sizes["v2"]["generator"] / 1e6, 2) == 0.93
    assert round(sizes["v3"]["generator"] / 1e6, 2) == 1.46
    assert sizes["v1"]["mpd"] > 0 and sizes["v1"]["msd"] > 0


def test_bad_config_is_refused_with_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  bach_size: 4\n")
    out = subprocess.run(
        nal_train_cmd() + ["train", "--config", str(bad), "--run-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == ev.EXIT_USAGE
    assert str(bad) in out.stderr and "train.bach_size" in out.stderr
    assert "did you mean 'batch_size'" in out.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_threads_setting_and_its_command_line_override(demo_corpus: Path, tmp_path: Path) -> None:
    """train.threads sets the trainer's intra-op threads; --threads overrides it, and the
    run's resolved config records what was used (the dashboard's system panel reads it)."""
    data = demo_config_dict(
        demo_corpus,
        train={"max_steps": 2, "threads": 3},
        log={"log_every": 1, "val_every": 1000},
        checkpoint={"every": 1000, "milestone_every": 0},
    )
    cfg = write_config(tmp_path / "c.yaml", data)
    for args, want in (([], 3), (["--threads", "1"], 1)):
        run = tmp_path / f"run{want}"
        out = subprocess.run(
            nal_train_cmd() + ["train", "--config", str(cfg), "--run-dir", str(run), *args],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
        assert out.returncode == ev.EXIT_OK, out.stderr
        assert f"CPU threads: {want} per process (train.threads)" in (run / "train.log").read_text()
        assert load(run / "config.yaml").train.threads == want
    bad = subprocess.run(
        nal_train_cmd() + ["train", "--config", str(cfg), "--threads", "0"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == ev.EXIT_USAGE and "--threads must be >= 1, got 0" in bad.stderr
