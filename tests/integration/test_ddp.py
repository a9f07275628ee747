"""Two processes with gloo via torchrun on the demo config (CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, demo_config_dict, read_events, wait_for, write_config
from trainer.checkpointing.loadtest import load_checkpoint
from trainer.rundir.checkpoints import list_checkpoints, verify_checkpoint

pytestmark = pytest.mark.slow


def _torchrun(nproc: int, args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "trainer",
        *args,
    ]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _config(tmp_path: Path, corpus: Path, batch: int, name: str = "c.yaml", **kw) -> Path:
    sections = {
        "train": {"batch_size": batch},
        "log": {"log_every": 1, "val_every": 1000},
        "checkpoint": {"every": 1000, "milestone_every": 0},
    }
    for k, v in kw.items():
        sections.setdefault(k, {}).update(v)
    return write_config(tmp_path / name, demo_config_dict(corpus, **sections))


def _run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=_env()
    )


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in read_events(run) if r["event"] == "step"]


def test_two_ranks_train_log_once_and_resume(demo_corpus: Path, tmp_path: Path) -> None:
    cfg, run = _config(tmp_path, demo_corpus, batch=2), tmp_path / "run"
    out = _run(
        _torchrun(2, ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "4"])
    )
    assert out.returncode == 0, out.stderr[-3000:]
    recs = read_events(run)
    start = recs[0]
    assert start["event"] == "run_start" and start["world_size"] == 2
    assert start["backend"] == "gloo" and start["rank_devices"] == ["cpu", "cpu"]
    assert _steps(run) == [1, 2, 3, 4]  # once per step, not once per rank
    steps = [r for r in recs if r["event"] == "step"]
    # samples/s is global: both ranks' batches per step time.
    assert steps[-1]["samples_per_s"] == pytest.approx(4 / steps[-1]["step_time"], rel=0.01)
    assert [r["event"] for r in recs].count("run_end") == 1
    assert [c.step for c in list_checkpoints(run)] == [4]

    # Resume the DDP checkpoint in a single process, then back under DDP.
    single = _run(
        [
            sys.executable,
            "-m",
            "trainer",
            "train",
            "--run-dir",
            str(run),
            "--resume",
            "latest",
            "--target-step",
            "6",
        ]
    )
    assert single.returncode == 0, single.stderr[-3000:]
    again = _run(
        _torchrun(2, ["train", "--run-dir", str(run), "--resume", "latest", "--target-step", "8"])
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert _steps(run) == list(range(1, 9))
    starts = [r for r in read_events(run) if r["event"] == "run_start"]
    assert [(s["start_step"], s["world_size"]) for s in starts] == [(0, 2), (4, 1), (6, 2)]


def test_sigterm_to_one_rank_stops_all_with_one_checkpoint(
    demo_corpus: Path, tmp_path: Path
) -> None:
    cfg, run = _config(tmp_path, demo_corpus, batch=2), tmp_path / "run"
    log = open(tmp_path / "out.log", "wb")
    p = subprocess.Popen(
        _torchrun(
            2, ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "100000"]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=_env(),
    )
    try:
        assert wait_for(lambda: len(_steps(run)) >= 2, timeout=180), (
            tmp_path / "out.log"
        ).read_text()[-3000:]
        import psutil

        ranks = [
            c
            for c in psutil.Process(p.pid).children(recursive=True)
            if "trainer" in " ".join(c.cmdline())
        ]
        assert len(ranks) == 2
        rank1 = next(c for c in ranks if c.environ().get("RANK") == "1")
        rank1.send_signal(signal.SIGTERM)
        assert p.wait(timeout=180) == 0
    finally:
        if p.poll() is None:
            p.kill()
    recs = read_events(run)
    ends = [r for r in recs if r["event"] == "run_end"]
    assert len(ends) == 1 and ends[0]["status"] == "stopped"
    ckpts = list_checkpoints(run)
    assert len(ckpts) == 1 and ckpts[0].step == ends[0]["step"] == _steps(run)[-1]
    assert verify_checkpoint(ckpts[0]) == (True, "ok")


def test_one_rank_batch_b_matches_two_ranks_batch_half(demo_corpus: Path, tmp_path: Path) -> None:
    one = _config(tmp_path, demo_corpus, batch=4, name="one.yaml")
    two = _config(tmp_path, demo_corpus, batch=2, name="two.yaml")
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    out = _run(
        [
            sys.executable,
            "-m",
            "trainer",
            "train",
            "--config",
            str(one),
            "--run-dir",
            str(r1),
            "--target-step",
            "1",
        ]
    )
    assert out.returncode == 0, out.stderr[-3000:]
    out = _run(
        _torchrun(2, ["train", "--config", str(two), "--run-dir", str(r2), "--target-step", "1"])
    )
    assert out.returncode == 0, out.stderr[-3000:]
    s1 = read_events(r1)[1]
    s2 = read_events(r2)[1]
    assert s1["event"] == s2["event"] == "step"
    # Losses: the mean over 4 clips vs the mean over rank 0's 2 clips differ; the updated
    # weights (gradients averaged over both ranks) must agree.
    w1 = load_checkpoint(list_checkpoints(r1)[-1].path)
    w2 = load_checkpoint(list_checkpoints(r2)[-1].path)
    for part in ("generator", "discriminators"):
        for k, a in w1[part].items():
            b = w2[part][k]
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), f"{part}.{k}"
    # ... and they did move from the initial weights (the comparison is not vacuous).
    from trainer.config.yamlfile import load
    from trainer.models import build_models

    torch.manual_seed(1234)
    g0, _ = build_models(load(one))
    moved = [
        k
        for k, v in g0.state_dict().items()
        if not torch.allclose(v, w1["generator"][k], rtol=1e-4, atol=1e-6)
    ]
    assert moved
