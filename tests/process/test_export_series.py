"""``nal-tui export RUN_DIR --csv FILE --tensorboard DIR``: the live branch's series (a resume
from an older step drops the abandoned steps), garbled lines counted, never fatal; the
TensorBoard log read back with tensorboard's own reader holds the same values."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factory import append_raw, run_start, steps, write_events
from trainer.events import schema as ev


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    log = run / "events.jsonl"
    val5 = ev.Val(step=5, losses={"mel_l1": 0.5}, samples=[], metrics={"mel_l1": 0.5, "pesq": 2.5})
    val10 = ev.Val(step=10, losses={"mel_l1": 0.4}, samples=[], metrics={"mel_l1": 0.4})
    unseen5 = ev.Val(
        step=5, losses={"mel_l1": 0.7}, samples=[], metrics={"mel_l1": 0.7}, set="unseen"
    )
    write_events(
        log, [run_start(0), *steps(1, 5, g=10.0), val5, unseen5, *steps(6, 10, g=20.0), val10]
    )
    append_raw(log, b'{"v":1,"event":"step","step":"eleven"}\n')
    # Resumed from the checkpoint of step 5: steps 6..10 and the val at 10 are abandoned.
    write_events(log, [run_start(5), *steps(6, 8, g=30.0, grad_norm_g=1.5)])
    return run


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nal_tui", "export", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_csv_holds_the_live_branch(tmp_path: Path) -> None:
    run = _run(tmp_path)
    out = tmp_path / "series.csv"
    r = _export(str(run), "--csv", str(out))
    assert r.returncode == 0, r.stderr
    assert "skipped 1 garbled line" in r.stdout and "8 steps" in r.stdout
    rows = list(csv.DictReader(out.open()))
    assert [int(x["step"]) for x in rows] == list(range(1, 9))
    assert [float(x["g"]) for x in rows] == [10.0] * 5 + [30.0] * 3
    assert rows[5]["grad_norm_g"] == "1.5" and rows[0]["grad_norm_g"] == ""
    assert float(rows[4]["val.mel_l1"]) == 0.5 and float(rows[4]["val.pesq"]) == 2.5
    assert float(rows[4]["unseen.mel_l1"]) == 0.7 and float(rows[4]["val.loss.mel_l1"]) == 0.5
    assert all(x["val.mel_l1"] == "" for x in rows if x["step"] != "5")  # step 10's val is gone


def test_tensorboard_export_reads_back_with_tensorboard(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _run(tmp_path)
    out = tmp_path / "tb"
    r = _export(str(run), "--tensorboard", str(out))
    assert r.returncode == 0, r.stderr
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0})
    acc.Reload()
    got = [(s.step, s.value) for s in acc.Scalars("train/loss_g")]
    assert got == [(s, 10.0) for s in range(1, 6)] + [(s, 30.0) for s in range(6, 9)]
    assert [(s.step, round(s.value, 6)) for s in acc.Scalars("val/mel_l1")] == [(5, 0.5)]
    assert [(s.step, round(s.value, 6)) for s in acc.Scalars("unseen/mel_l1")] == [(5, 0.7)]


def test_refusals(tmp_path: Path) -> None:
    r = _export(str(tmp_path / "nope"), "--csv", str(tmp_path / "x.csv"))
    assert r.returncode == 1 and "no run directory" in r.stderr
    r = _export(str(tmp_path))
    assert r.returncode == 2 and "--csv FILE and/or --tensorboard DIR" in r.stderr
    r = _export(str(tmp_path), "--csv", str(tmp_path / "x.csv"))
    assert r.returncode == 1 and "no event log" in r.stderr
    assert not (tmp_path / "x.csv").exists()
