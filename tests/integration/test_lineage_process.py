"""nal-train as a real process: branches, the abandoned dir, "latest", retention, the
fresh-start refusal, manifest-less checkpoints and checkpoints that verify but don't load."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.ckpt_factory import HOSTILE_KINDS, save_hostile
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
from trainer.rundir.checkpoints import list_abandoned, list_checkpoints, verify_checkpoint
from trainer.rundir.layout import checkpoint_paths
from trainer.rundir.resolve import latest_checkpoint

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, corpus: Path, name: str = "c.yaml", **checkpoint) -> Path:
    data = demo_config_dict(
        corpus,
        log={"log_every": 1, "val_every": 1000},
        checkpoint={"every": 2, "keep_last": 3, "milestone_every": 0, **checkpoint},
    )
    return write_config(tmp_path / name, data)


def _train(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nal_train_cmd() + ["train", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _starts(run: Path) -> list[dict]:
    return [r for r in read_events(run) if r["event"] == "run_start"]


def _steps(infos) -> list[int]:
    return [i.step for i in infos]


def _all_ok(infos) -> bool:
    return all(verify_checkpoint(i) == (True, "ok") for i in infos)


def test_resume_from_an_older_checkpoint_starts_a_branch(demo_corpus: Path, tmp_path: Path):
    """The issue's sequence: train to 30 (every 5, keep_last 3), resume from 10, stop at 12."""
    cfg = _config(tmp_path, demo_corpus, every=5, keep_last=3, milestone_every=10)
    run = tmp_path / "run"
    out = _train("--config", str(cfg), "--run-dir", str(run), "--target-step", "30")
    assert out.returncode == 0, out.stderr[-3000:]
    assert _steps(list_checkpoints(run)) == [10, 20, 25, 30]
    first_branch = _starts(run)[0]["branch"]

    ten = checkpoint_paths(run, 10)[0]
    n_starts = len(_starts(run))
    p = start_trainer(
        ["train", "--run-dir", str(run), "--resume", str(ten), "--target-step", "100000"],
        tmp_path / "out.log",
    )
    try:
        # SIGTERM once the resumed run has logged step 12 (it stops at the step it is in).
        def at_12() -> bool:
            recs = read_events(run)
            starts = [j for j, r in enumerate(recs) if r["event"] == "run_start"]
            if len(starts) <= n_starts:
                return False  # the resumed run has not started yet
            return any(r["event"] == "step" and r["step"] >= 12 for r in recs[starts[-1] :])

        assert wait_for(at_12, timeout=300), (tmp_path / "out.log").read_text()[-3000:]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=300) == ev.EXIT_OK
    finally:
        p.kill()
    stopped = read_events(run)[-1]
    assert stopped["event"] == "run_end" and stopped["status"] == "stopped"
    s = stopped["step"]
    assert s >= 12
    start = _starts(run)[-1]
    assert start["start_step"] == 10 and start["parent_step"] == 10
    assert start["branch"] and start["branch"] != first_branch
    assert start["moved_aside"].startswith("checkpoints/abandoned/")
    assert start["moved_aside"].endswith("_steps-20-30")
    # The stop checkpoint is kept (retention sees the live branch only) and is "latest";
    # 20, 25 and 30 are aside, complete and verified.
    live = list_checkpoints(run)
    assert _steps(live) == [10, s] and _all_ok(live)
    assert live[-1].branch == start["branch"] and live[-1].parent.step == 10
    aside = list_abandoned(run)
    assert _steps(aside) == [20, 25, 30] and _all_ok(aside)
    assert {str(i.path.parent.relative_to(run)) for i in aside} == {start["moved_aside"]}
    assert latest_checkpoint(run)[0].step == s

    out = _train("--run-dir", str(run), "--resume", "latest", "--target-step", str(s + 1))
    assert out.returncode == 0, out.stderr[-3000:]
    assert _starts(run)[-1]["start_step"] == s
    assert _steps(list_checkpoints(run)) == [10, s, s + 1]

    # Back to the abandoned branch by path: 25 (and its ancestor 20) return to the live
    # branch, this branch's checkpoints go aside, nothing is deleted or renamed over.
    twenty_five = next(i for i in list_abandoned(run) if i.step == 25)
    out = _train("--run-dir", str(run), "--resume", str(twenty_five.path), "--target-step", "26")
    assert out.returncode == 0, out.stderr[-3000:]
    back = _starts(run)[-1]
    assert back["start_step"] == 25 and back["resumed_from"].endswith(
        "checkpoints/ckpt_00000025.pt"
    )
    live = list_checkpoints(run)
    assert _steps(live) == [10, 20, 25, 26] and _all_ok(live)
    aside = list_abandoned(run)
    assert sorted(_steps(aside)) == sorted([30, s, s + 1]) and _all_ok(aside)
    out = _train("--run-dir", str(run), "--resume", "latest", "--target-step", "27")
    assert out.returncode == 0 and _starts(run)[-1]["start_step"] == 26


def test_fresh_start_in_a_run_dir_is_refused_and_new_branch_moves_aside(
    demo_corpus: Path, tmp_path: Path
):
    cfg, run = _config(tmp_path, demo_corpus), tmp_path / "demo"
    out = _train("--config", str(cfg), "--run-dir", str(run), "--target-step", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    log_before = (run / "events.jsonl").read_bytes()
    ckpts_before = sorted(p.name for p in (run / "checkpoints").iterdir())

    out = _train("--config", str(cfg), "--run-dir", str(run), "--target-step", "4")
    assert out.returncode == ev.EXIT_USAGE
    msg = out.stderr.strip()
    assert len(msg.splitlines()) == 1 and "Traceback" not in msg
    assert "already holds a run (last step 4, newest checkpoint at step 4)" in msg
    for choice in ("--resume latest", f"--run-dir {tmp_path / 'demo-2'}", "--new-branch"):
        assert choice in msg
    assert (run / "events.jsonl").read_bytes() == log_before  # nothing appended
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ckpts_before

    out = _train("--config", str(cfg), "--run-dir", str(run), "--new-branch", "--target-step", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    start = _starts(run)[-1]
    assert start["start_step"] == 0 and start["parent_step"] is None
    assert start["moved_aside"].endswith("_steps-2-4")
    live, aside = list_checkpoints(run), list_abandoned(run)
    assert _steps(live) == [2] and live[0].branch == start["branch"] and live[0].parent is None
    assert _steps(aside) == [2, 4] and _all_ok(aside)
    assert live[0].sha256 != aside[0].sha256  # a new run's step 2, not the old one


def test_retention_never_counts_an_unverifiable_checkpoint(demo_corpus: Path, tmp_path: Path):
    run = tmp_path / "run"
    cfg4 = _config(tmp_path, demo_corpus, "keep4.yaml", keep_last=4)
    out = _train("--config", str(cfg4), "--run-dir", str(run), "--target-step", "8")
    assert out.returncode == 0, out.stderr[-3000:]
    assert _steps(list_checkpoints(run)) == [2, 4, 6, 8]
    six = checkpoint_paths(run, 6)[0]
    raw = bytearray(six.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    six.write_bytes(bytes(raw))  # same size: only its hash tells
    cfg3 = _config(tmp_path, demo_corpus, "keep3.yaml", keep_last=3)
    out = _train(
        "--config", str(cfg3), "--run-dir", str(run), "--resume", "latest", "--target-step", "10"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # keep_last 3 counts 10, 8 and 4: the corrupt 6 neither counts nor costs 4 its place.
    left = list_checkpoints(run)
    assert _steps(left) == [4, 6, 8, 10]
    assert [verify_checkpoint(i)[0] for i in left] == [True, False, True, True]


@pytest.fixture(scope="module")
def base_run(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with checkpoints at steps 2 and 4 (copied by each test)."""
    d = tmp_path_factory.mktemp("base")
    cfg = _config(d, demo_corpus)
    out = _train("--config", str(cfg), "--run-dir", str(d / "run"), "--target-step", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    return d / "run"


def _copy(base_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    return run


def test_manifest_less_intact_checkpoint_is_kept_aside(base_run: Path, tmp_path: Path):
    run = _copy(base_run, tmp_path)
    pt, mp = checkpoint_paths(run, 4)
    data = pt.read_bytes()
    mp.unlink()  # the manifest is lost; the .pt is intact
    out = _train("--run-dir", str(run), "--resume", "latest", "--target-step", "5")
    assert out.returncode == 0, out.stderr[-3000:]
    assert _starts(run)[-1]["start_step"] == 2
    (kept,) = list_abandoned(run)
    assert kept.path.name == "ckpt_00000004.pt" and kept.path.read_bytes() == data
    assert "no-manifest" in kept.path.parent.name
    alerts = [r for r in read_events(run) if r["event"] == "alert"]
    (alert,) = [a for a in alerts if a["kind"] == ev.ALERT_CHECKPOINT_KEPT_ASIDE]
    assert "ckpt_00000004.pt had no manifest; kept aside" in alert["message"]
    assert "it loads (a training state of step 4)" in alert["message"]
    assert "kept aside" in out.stderr


@pytest.mark.parametrize("kind", sorted(HOSTILE_KINDS))
def test_checkpoint_that_verifies_but_does_not_load(base_run: Path, tmp_path: Path, kind: str):
    run = _copy(base_run, tmp_path)
    marker = tmp_path / "code-ran"
    save_hostile(run, 4, kind, marker)
    assert verify_checkpoint(list_checkpoints(run)[-1]) == (True, "ok")  # the hash is fine
    explicit = str(checkpoint_paths(run, 4)[0])

    # An explicit path: exit 5, one line naming the difference, the run's real last step.
    out = _train("--run-dir", str(run), "--resume", explicit, "--target-step", "5")
    assert out.returncode == ev.EXIT_NO_CHECKPOINT
    err = out.stderr.strip()
    # Start-up progress is logged at INFO; the failure itself is one line.
    errors = [line for line in err.splitlines() if " INFO " not in line]
    assert len(errors) == 1, err
    assert f"cannot resume from {explicit}: " in errors[0] and HOSTILE_KINDS[kind] in err
    assert "Traceback" not in err and "weights_only=False" not in err
    end = read_events(run)[-1]
    assert end["event"] == "run_end" and end["status"] == "failed"
    assert end["step"] == 4 and end["exit_code"] == ev.EXIT_NO_CHECKPOINT
    assert _steps(list_checkpoints(run)) == [2, 4]  # a failed start moves nothing

    # --resume latest falls back to step 2 with a resume_fallback alert naming why.
    out = _train("--run-dir", str(run), "--resume", "latest", "--target-step", "5")
    assert out.returncode == 0, out.stderr[-3000:]
    assert _starts(run)[-1]["start_step"] == 2
    (fb,) = [
        r
        for r in read_events(run)
        if r["event"] == "alert" and r["kind"] == ev.ALERT_RESUME_FALLBACK
    ]
    assert "ckpt_00000004.pt" in fb["message"] and HOSTILE_KINDS[kind] in fb["message"]
    assert _steps(list_abandoned(run)) == [4]  # kept, off the live branch
    assert _steps(list_checkpoints(run)) == [2, 4, 5]
    assert list_checkpoints(run)[1].sha256 != list_abandoned(run)[0].sha256
    assert not marker.exists()  # the pickled code never ran


def test_verify_command(base_run: Path, tmp_path: Path):
    run = _copy(base_run, tmp_path)

    def verify(*args: str) -> tuple[int, dict]:
        p = subprocess.run(
            nal_train_cmd() + ["verify", "--json", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        return p.returncode, json.loads(p.stdout)

    code, out = verify("--run-dir", str(run))
    assert code == 0 and out["ok"] and out["step"] == 4 and out["skipped"] == []
    save_hostile(run, 4, "config", tmp_path / "m")
    code, out = verify("--run-dir", str(run))
    assert code == 0 and out["step"] == 2
    assert [s["path"].endswith("ckpt_00000004.pt") for s in out["skipped"]] == [True]
    code, out = verify("--checkpoint", str(checkpoint_paths(run, 4)[0]))
    assert code == ev.EXIT_NO_CHECKPOINT and not out["ok"] and out["checkpoint"] is None
    assert HOSTILE_KINDS["config"] in out["message"]
    other = write_config(
        tmp_path / "other.yaml",
        demo_config_dict(tmp_path, generator={"upsample_initial_channel": 32}),
    )
    code, out = verify(
        "--run-dir", str(run), "--checkpoint", "ckpt_00000002.pt", "--config", str(other)
    )
    assert code == ev.EXIT_NO_CHECKPOINT
    assert "generator.upsample_initial_channel: 64 in the checkpoint, 32 now" in out["message"]
