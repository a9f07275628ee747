"""train.recover: a real nal-train run driven into non-finite losses after checkpoints exist
(tests/integration/faultsite injects NaN generator losses) goes back in-process to the
newest healthy checkpoint, scales both learning rates, and completes; max_recoveries holds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, demo_config_dict, nal_train_cmd, read_events, write_config
from trainer.events import schema as ev
from trainer.rundir.checkpoints import list_abandoned, list_checkpoints

FAULT_SITE = ROOT / "tests" / "integration" / "faultsite"
LR = 2.0e-4


def _run(tmp_path: Path, corpus: Path, fault: str, *args: str, max_rec: int = 2):
    data = demo_config_dict(
        corpus,
        log={"log_every": 1, "val_every": 1000, "val_samples": 0},
        checkpoint={"every": 2, "keep_last": 20, "milestone_every": 0},
        train={"max_nonfinite_steps": 2, "batch_size": 2,
               "recover": {"on": ["nonfinite"], "max_recoveries": max_rec, "lr_scale": 0.5}},
    )  # fmt: skip
    cfg = write_config(tmp_path / "c.yaml", data)
    run = tmp_path / "run"
    env = dict(os.environ, NAL_TEST_FAULT=fault, PYTHONPATH=str(FAULT_SITE))
    p = subprocess.run(
        [*nal_train_cmd(), "train", "--config", str(cfg), "--run-dir", str(run), *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    return p, run


def _of(run: Path, kind: str) -> list[dict]:
    return [r for r in read_events(run) if r["event"] == kind]


@pytest.mark.slow
def test_recovers_from_nonfinite_and_completes(demo_corpus: Path, tmp_path: Path) -> None:
    # Train steps 5-6 are NaN: the streak hits the limit at 6; checkpoints at 2, 4 (the one at
    # 6 is skipped mid-streak, as without the policy). Back to 4.
    p, run = _run(tmp_path, demo_corpus, "nonfinite:5:2", "--target-step", "8")
    assert p.returncode == 0, p.stderr[-3000:]
    (rec,) = _of(run, ev.Recovery.EVENT)
    assert (rec["step"], rec["from_step"], rec["trigger"]) == (4, 6, "nonfinite")
    assert rec["checkpoint"] == "checkpoints/ckpt_00000004.pt"
    assert rec["recoveries"] == 1 and rec["max_recoveries"] == 2
    steps = _of(run, ev.Step.EVENT)
    before = next(s for s in steps if s["step"] == 4)
    assert rec["lr_g"] == pytest.approx(before["lr_g"] * 0.5)
    assert rec["lr_d"] == pytest.approx(before["lr_d"] * 0.5)
    after = [s for s in steps if s["t"] > rec["t"]]
    assert [s["step"] for s in after] == list(range(5, 9))  # continued to the target
    assert all(s["lr_g"] == pytest.approx(rec["lr_g"], rel=0.01) for s in after)
    assert all(s["g"] == s["g"] for s in after)  # finite again (NaN != NaN)
    (alert,) = [a for a in _of(run, ev.Alert.EVENT) if a["kind"] == ev.ALERT_RECOVERY]
    assert "back to step 4" in alert["message"]
    assert _of(run, ev.RunEnd.EVENT)[-1]["status"] == ev.STATUS_COMPLETED
    # Nothing deleted, nothing overwritten: the checkpoint gone back to is the one saved.
    ckpts = {c["step"]: c["sha256"] for c in _of(run, ev.Checkpoint.EVENT)}
    assert sorted(ckpts) == [2, 4, 6, 8]
    assert {c.step: c.sha256 for c in list_checkpoints(run)} == ckpts
    assert list_abandoned(run) == [] and rec["moved_aside"] is None
    # The resolved config and a resume carry the scaled learning rates on.
    assert "lr_g: 0.0001\n" in (run / "config.yaml").read_text()
    r = subprocess.run(
        [*nal_train_cmd(), "train", "--run-dir", str(run), "--resume", "latest",
         "--target-step", "9"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    start = _of(run, ev.RunStart.EVENT)[-1]
    assert start["start_step"] == 8
    assert start["lr_g"] == pytest.approx(after[-1]["lr_g"], rel=0.01)
    assert _of(run, ev.Step.EVENT)[-1]["lr_g"] == pytest.approx(start["lr_g"], rel=0.01)


@pytest.mark.slow
def test_max_recoveries_then_stops_with_exit_4(demo_corpus: Path, tmp_path: Path) -> None:
    p, run = _run(tmp_path, demo_corpus, "nonfinite:5:100000", "--target-step", "40", max_rec=2)
    assert p.returncode == ev.EXIT_NONFINITE, p.stderr[-3000:]
    recs = _of(run, ev.Recovery.EVENT)
    assert [(r["step"], r["recoveries"]) for r in recs] == [(4, 1), (4, 2)]
    assert recs[1]["lr_g"] == pytest.approx(recs[0]["lr_g"] * 0.5)
    end = _of(run, ev.RunEnd.EVENT)[-1]
    assert (end["status"], end["exit_code"]) == (ev.STATUS_FAILED, ev.EXIT_NONFINITE)
