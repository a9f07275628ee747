"""Storage faults on a real ``nal-train``: a full disk (a real, small tmpfs; skipped where
mounting is not permitted) under the event log, the samples, the checkpoints and the
resolved config, and an I/O error (injected) in the event log.

Each must end with one clear line naming the file and the operation, exit code 6, the last
verified checkpoint intact, no torn line in events.jsonl, and no stale PID file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
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
from trainer.events import schema as ev
from trainer.rundir.checkpoints import list_checkpoints, verify_checkpoint
from trainer.rundir.lock import read_pid_file

POLL = 0.02
INJECT = Path(__file__).with_name("inject_fault.py")


@pytest.fixture
def tmpfs() -> Iterator[Callable[..., Path]]:
    """Mount a small tmpfs (a real disk that fills up); skip where that is not allowed."""
    mounted: list[Path] = []

    def mount(path: Path, size: str, nr_inodes: int | None = None) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        opts = f"size={size},mode=0777" + (f",nr_inodes={nr_inodes}" if nr_inodes else "")
        try:
            r = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError) as e:
            pytest.skip(f"cannot mount a tmpfs here: {e}")
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for p in reversed(mounted):
        subprocess.run(["umount", "-l", str(p)], capture_output=True, timeout=30)


def _fill(directory: Path) -> None:
    """Write a filler file until the filesystem refuses (ENOSPC)."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        block = b"\0" * 65536
        while True:
            try:
                os.write(fd, block)
            except OSError:
                break
        while True:  # the last partial block, byte by byte-ish
            try:
                os.write(fd, b"\0" * 512)
            except OSError:
                break
    finally:
        os.close(fd)


def _config(tmp_path: Path, corpus: Path, **sections) -> Path:
    base = {
        "log": {"log_every": 1, "val_every": 1000, "val_samples": 1},
        "checkpoint": {"every": 1000, "keep_last": 3, "milestone_every": 0},
    }
    for k, v in sections.items():
        base.setdefault(k, {}).update(v)
    return write_config(tmp_path / "c.yaml", demo_config_dict(corpus, **base))


def _run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nal_train_cmd() + args, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in read_events(run) if r["event"] == "step"]


def _assert_clean_log(run: Path) -> list[dict]:
    """Every line of events.jsonl is a whole JSON record; the file ends with a newline."""
    raw = (run / "events.jsonl").read_bytes()
    assert raw.endswith(b"\n"), raw[-200:]
    return [json.loads(line) for line in raw.splitlines()]


def _assert_one_storage_line(out: str, *needles: str) -> None:
    assert "Traceback" not in out and "Logging error" not in out, out
    lines = [ln for ln in out.splitlines() if "storage error:" in ln]
    assert len(lines) == 1, out
    for n in needles:
        assert n in lines[0], lines[0]


def _assert_no_temp_files(run: Path) -> None:
    temps = [p for p in run.rglob(".*.tmp")]
    assert not temps, temps


def test_full_disk_under_samples(demo_corpus: Path, tmp_path: Path, tmpfs) -> None:
    run = tmp_path / "run"
    tmpfs(run / "samples", "16k")  # smaller than one sample WAV
    cfg = _config(tmp_path, demo_corpus, log={"val_every": 2})
    p = _run(["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "50"])
    out = p.stdout + p.stderr
    assert p.returncode == ev.EXIT_STORAGE, out
    _assert_one_storage_line(out, "cannot write sample", "samples/step_00000002/", "No space left")
    recs = _assert_clean_log(run)
    end = recs[-1]
    assert end["event"] == "run_end" and end["status"] == ev.STATUS_FAILED
    assert end["exit_code"] == ev.EXIT_STORAGE and "samples/step_00000002/" in end["reason"]
    # The steps trained were kept: a final checkpoint on the (healthy) checkpoint disk.
    ckpts = list_checkpoints(run)
    assert [c.step for c in ckpts] == [2] and verify_checkpoint(ckpts[0]) == (True, "ok")
    assert read_pid_file(run) is None
    _assert_no_temp_files(run)


@pytest.mark.slow
def test_full_disk_under_checkpoints(demo_corpus: Path, tmp_path: Path, tmpfs) -> None:
    run = tmp_path / "run"
    tmpfs(run / "checkpoints", "8m")  # one demo checkpoint (~5.3 MB) fits, two do not
    cfg = _config(tmp_path, demo_corpus, checkpoint={"every": 2})
    p = _run(["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "50"])
    out = p.stdout + p.stderr
    assert p.returncode == ev.EXIT_STORAGE, out
    _assert_one_storage_line(out, "cannot save checkpoint", "ckpt_00000004.pt", "No space left")
    end = _assert_clean_log(run)[-1]
    assert end["event"] == "run_end" and end["status"] == ev.STATUS_FAILED
    assert end["step"] == 4 and end["exit_code"] == ev.EXIT_STORAGE
    ckpts = list_checkpoints(run)
    assert [c.step for c in ckpts] == [2] and verify_checkpoint(ckpts[0]) == (True, "ok")
    assert read_pid_file(run) is None
    _assert_no_temp_files(run)


@pytest.mark.slow
def test_full_disk_under_the_event_log(demo_corpus: Path, tmp_path: Path, tmpfs) -> None:
    run = tmpfs(tmp_path / "run", "32m")
    cfg = _config(tmp_path, demo_corpus)
    first = _run(["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "2"])
    assert first.returncode == 0, first.stderr
    [ck] = list_checkpoints(run)
    p = start_trainer(
        ["train", "--run-dir", str(run), "--resume", "latest", "--target-step", "100000"],
        tmp_path / "out.log",
    )
    try:
        assert wait_for(lambda: len(_steps(run)) >= 3, 180, POLL)
        _fill(run)  # the disk is full from here: the log's next page cannot be allocated
        code = p.wait(timeout=300)
    finally:
        p.kill()
    out = (tmp_path / "out.log").read_text()
    assert code == ev.EXIT_STORAGE, out
    _assert_one_storage_line(out, "events.jsonl", "No space left")
    recs = _assert_clean_log(run)  # the record that did not fit was cut back whole
    assert recs[-1]["event"] in ("step", "alert", "run_end")
    if recs[-1]["event"] == "run_end":  # written if the page still had room for it
        assert recs[-1]["status"] == ev.STATUS_FAILED
    assert [c.step for c in list_checkpoints(run)] == [2]  # a final save did not fit
    assert verify_checkpoint(ck) == (True, "ok")
    assert read_pid_file(run) is None
    _assert_no_temp_files(run)


def test_no_inode_left_for_the_resolved_config(demo_corpus: Path, tmp_path: Path, tmpfs) -> None:
    # Everything the trainer creates before config.yaml exists already; the tmpfs has one
    # inode to spare (for the PID file's temp), so config.yaml's temp file is refused.
    run = tmpfs(tmp_path / "run", "1m", nr_inodes=7)
    for name in ("train.log", "run.lock", "events.jsonl"):
        (run / name).touch()
    for name in ("checkpoints", "samples"):
        (run / name).mkdir()
    cfg = _config(tmp_path, demo_corpus)
    p = _run(["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "5"])
    out = p.stdout + p.stderr
    assert p.returncode == ev.EXIT_STORAGE, out
    assert "Traceback" not in out
    assert "cannot write the resolved config" in out and "config.yaml" in out
    end = _assert_clean_log(run)[-1]
    assert end["event"] == "run_end" and end["exit_code"] == ev.EXIT_STORAGE
    assert read_pid_file(run) is None
    _assert_no_temp_files(run)


@pytest.mark.slow
def test_io_error_in_the_event_log_cuts_the_torn_line(demo_corpus: Path, tmp_path: Path):
    run = tmp_path / "run"
    cfg = _config(tmp_path, demo_corpus)
    p = subprocess.run(
        [sys.executable, str(INJECT), "train", "--config", str(cfg), "--run-dir", str(run)]
        + ["--target-step", "100"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=dict(os.environ, NAL_TEST_FAULT="eio-events:3"),  # run_start, step 1; step 2: EIO
    )
    out = p.stdout + p.stderr
    assert p.returncode == ev.EXIT_STORAGE, out
    _assert_one_storage_line(out, "cannot append a record to", "events.jsonl", "Input/output")
    recs = _assert_clean_log(run)  # the half-written line is gone
    assert [r["event"] for r in recs] == ["run_start", "step"]
    # The steps trained are kept: a final checkpoint at step 2, whose record failed.
    ckpts = list_checkpoints(run)
    assert [c.step for c in ckpts] == [2] and verify_checkpoint(ckpts[0]) == (True, "ok")
    assert read_pid_file(run) is None


def test_event_writer_cuts_back_a_partial_write(tmp_path: Path) -> None:
    """A write that the kernel takes only in part (here RLIMIT_FSIZE: EFBIG after a short
    write) leaves no torn line; no root needed."""
    code = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from trainer.events import schema as ev
from trainer.events.writer import EventWriter, EventWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
w = EventWriter({str(tmp_path / "events.jsonl")!r})
w.write(ev.Milestone(step=1, name="a"))
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (150, hard))
try:
    w.write(ev.Milestone(step=2, name="b" * 200))
except EventWriteError as e:
    print("ERR", e)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
w.write(ev.Milestone(step=3, name="c"))
w.close()
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ERR cannot append a record to") and "too large" in p.stdout
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 3]


def test_leftover_temp_files_anywhere_are_cleaned_at_start(
    demo_corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    cfg = _config(tmp_path, demo_corpus)
    # What killed writes leave behind (names as write_wav and rundir make them). A killed
    # checkpoint save counts as a run, so the start says --new-branch explicitly.
    left = [
        run / "samples" / "step_00000002" / ".DEMO-0001_gen.wav.0badc0de.tmp",
        run / "samples" / ".x.wav.12345678.tmp",
        run / "checkpoints" / ".ckpt_00000004.pt.deadbeef.tmp",
        run / ".config.yaml.cafebabe.tmp",
    ]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    done = _run(
        ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "1", "--new-branch"]
    )
    assert done.returncode == 0, done.stderr
    assert not [p for p in left if p.exists()]
    log = (run / "train.log").read_text()
    assert all(str(p) in log for p in left)
