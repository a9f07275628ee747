"""Preflight checks that start processes: the trainer's --help and summary, a whole
preflight, a PID file of a process that has exited (the unit tier has the rest)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nal_tui import preflight as pf
from nal_tui.preflight.checks_data import check_output_dirs
from nal_tui.preflight.checks_env import (
    _Sub,
    check_models,
    check_run_state,
    check_trainer,
)
from nal_tui.preflight.estimates import estimate_params
from nal_tui.preflight.report import FAIL, PASS, SKIP, WARN
from trainer.config.yamlfile import load
from trainer.rundir.layout import PID_FILE

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo.yaml"


def test_trainer_pass():
    from nal_tui.core.control.command import trainer_base_command

    base, _ = trainer_base_command()
    res = check_trainer(_Sub([*base, "--help"]))
    assert res.status == PASS


def test_trainer_fail():
    res = check_trainer(_Sub(["/nonexistent/nal-train", "--help"]))
    assert res.status == FAIL and "cannot run" in res.message
    res = check_trainer(
        _Sub(
            [
                sys.executable,
                "-c",
                "import sys; print('boom', file=sys.stderr); sys.exit(3)",
                "--help",
            ]
        )
    )
    assert res.status == FAIL and "boom" in res.message


@pytest.fixture(scope="module")
def demo_counts():
    from nal_tui.core.control.command import trainer_base_command

    base, _ = trainer_base_command()
    return _Sub([*base, "summary", "--config", str(DEMO)])


def test_models_pass_and_estimate_is_close(demo_counts):
    res, counts = check_models(demo_counts)
    assert res.status == PASS and "generator" in res.message and counts["generator"] > 0
    est = estimate_params(load(DEMO))
    for k in ("generator", "mpd", "msd"):
        assert abs(est[k] - counts[k]) / counts[k] < 0.1, (k, est[k], counts[k])


def test_models_fail():
    sub = _Sub(
        [
            sys.executable,
            "-c",
            "import sys; print('RuntimeError: bad kernel size', file=sys.stderr); sys.exit(1)",
        ]
    )
    res, counts = check_models(sub)
    assert res.status == FAIL and "bad kernel size" in res.message and counts == {}
    res, _ = check_models(_Sub([sys.executable, "-c", "print('no json here')"]))
    assert res.status == FAIL and "no JSON object" in res.message


def test_run_state_stale_pid_file_warns_with_fix(tmp_path):
    p = subprocess.Popen(["true"])
    p.wait()
    (tmp_path / PID_FILE).write_text(
        json.dumps(
            {
                "pid": p.pid,
                "create_time": 1.0,
                "cmdline": ["nal-train"],
                "started": 1.0,
                "run_dir": str(tmp_path),
            }
        )
    )
    res = check_run_state(tmp_path)
    assert res.status == WARN and "stale" in res.message
    assert f"delete {tmp_path / PID_FILE}" in res.fix


def test_run_checks_demo_fresh(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the demo config's paths are relative to the project root
    rep = pf.run_checks(
        DEMO, tmp_path / "run", build_models=False, disk_free=1 << 40, busy=[]
    )  # busy=[]: the test machine's own load is not this test's subject
    assert rep.ok, "\n".join(rep.lines())
    assert [c.name for c in rep.checks] == [
        "Configuration",
        "Data",
        "Output directories",
        "Installation",
        "Trainer",
        "Model components",
        "System resources",
        "Run state",
    ]
    assert rep.checks[5].status == SKIP and rep.total == 7
    assert "--skip-models" not in rep.checks[5].message  # the dialogs show it: no CLI flag
    assert rep.checks[5].message.startswith("not built in this quick check")
    assert rep.lines()[-1].startswith("7/7 checks passed")


def test_run_checks_bad_config_skips_dependents(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("trian: {}\n")
    rep = pf.run_checks(p, None, build_models=True)
    assert not rep.ok and rep.checks[0].status == FAIL
    assert {c.name for c in rep.checks if c.status == SKIP} == {
        "Data",
        "Output directories",
        "Model components",
        "System resources",
        "Run state",
    }
    d = rep.to_dict()
    assert d["ok"] is False and d["failed"] == 1 and d["total"] == 3 and d["skipped"] == 5


def test_output_dirs_checks_at_once_never_undo_each_other(tmp_path):
    """The welcome screen's preflight and a start dialog's can run together: neither may
    remove a directory the other just created (it failed as 'No such file or directory')."""
    rd = tmp_path / "logs" / "demo"
    results: list[str] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        for _ in range(200):
            res = check_output_dirs(rd)
            results.append(res.status if res.status == PASS else res.message)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [PASS] * 400
    assert list(tmp_path.iterdir()) == []  # nothing left behind
