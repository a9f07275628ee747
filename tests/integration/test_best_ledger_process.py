"""The best-checkpoint ledger with real nal-train processes and real files: the best
validation is early, its checkpoint survives retention (keep_last 1), the over-training
alert names it, ``--resume best``, ``vocode --checkpoint best`` and ``verify --checkpoint
best`` use it, and it survives a resume from an older checkpoint (moved aside with its branch,
never deleted, resumable by path)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, demo_config_dict, nal_train_cmd, read_events, write_config
from trainer.events import schema as ev
from trainer.rundir.checkpoints import list_abandoned, list_checkpoints, verify_checkpoint
from trainer.rundir.layout import checkpoint_paths
from trainer.rundir.manifest import read_manifest

pytestmark = pytest.mark.slow

KEEP = 2
PATIENCE = 3


def _config(tmp_path: Path, corpus: Path) -> Path:
    # A strong weight decay shrinks the generator step by step: after a first improvement,
    # every validation is worse than the one before, as a run past its best is.
    data = demo_config_dict(
        corpus,
        log={"log_every": 1, "val_every": 2, "val_samples": 1, "val_metrics": ["mel_l1"]},
        optim={"weight_decay": 20.0, "lr_g": 2e-3},
        checkpoint={
            "every": 6,
            "keep_last": 1,
            "milestone_every": 0,
            "best": {"metric": "mel_l1", "keep": KEEP, "patience": PATIENCE},
        },
    )
    return write_config(tmp_path / "c.yaml", data)


def _nal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nal_train_cmd() + list(args), capture_output=True, text=True, timeout=900, cwd=ROOT
    )


def _since(recs: list[dict], n_starts: int) -> list[dict]:
    starts = [i for i, r in enumerate(recs) if r["event"] == "run_start"]
    return recs[starts[n_starts] :]


def test_best_checkpoints_survive_retention_resume_and_branches(
    demo_corpus: Path, tmp_path: Path
) -> None:
    cfg, run = _config(tmp_path, demo_corpus), tmp_path / "run"
    out = _nal("train", "--config", str(cfg), "--run-dir", str(run), "--target-step", "12")
    assert out.returncode == 0, out.stderr[-3000:]
    recs = read_events(run)
    scores = {r["step"]: r["metrics"]["mel_l1"] for r in recs if r["event"] == "val"}
    assert sorted(scores) == [2, 4, 6, 8, 10, 12]
    ledger = sorted(scores, key=lambda s: (scores[s], s))[:KEEP]
    best = ledger[0]
    assert max(ledger) < 6, f"premise: the best validations are early ({scores})"

    # Retention keeps the newest (keep_last 1) and the best K, nothing else: the regular
    # step-6 checkpoint is gone, the best ones (saved at their validation) are not.
    live = list_checkpoints(run)
    assert [i.step for i in live] == sorted({*ledger, 12})
    assert all(verify_checkpoint(i) == (True, "ok") for i in live)
    ckpts = {r["step"]: r for r in recs if r["event"] == "checkpoint"}
    assert sorted(ckpts) == sorted({*ledger, 6, 12})
    for s in ledger:
        assert ckpts[s]["best"] and ckpts[s]["metric"] == "mel_l1"
        assert ckpts[s]["score"] == pytest.approx(scores[s])
    assert not ckpts[12]["best"] and ckpts[12]["best_steps"] == ledger
    info = {i.step: i for i in live}
    assert info[best].score("mel_l1") == pytest.approx(scores[best])
    assert info[best].best.among and info[12].best.since_best == 12 // 2 - best // 2

    # Over-training: the metric worse than the best for PATIENCE validations in a row.
    alerts = [r for r in recs if r["event"] == "alert" and r["kind"] == ev.ALERT_OVERTRAINING]
    first_alert = best + 2 * PATIENCE
    assert [a["step"] for a in alerts] == [first_alert]
    assert f"at step {best}" in alerts[0]["message"]

    # vocode and verify resolve "best" through the same ledger.
    wav = sorted((demo_corpus / "wavs").glob("*.wav"))[0]
    out = _nal(
        "vocode",
        "--run-dir",
        str(run),
        "--checkpoint",
        "best",
        str(wav),
        "--out",
        str(tmp_path / "o"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"ckpt_{best:08d}.pt (step {best}," in out.stdout
    assert (tmp_path / "o" / wav.name).is_file()
    out = _nal("verify", "--run-dir", str(run), "--checkpoint", "best", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["step"] == best

    # --resume best: a new branch from the best; the later checkpoint is moved aside.
    n = len([r for r in recs if r["event"] == "run_start"])
    out = _nal("train", "--run-dir", str(run), "--resume", "best", "--target-step", str(best + 4))
    assert out.returncode == 0, out.stderr[-3000:]
    start = _since(read_events(run), n)[0]
    assert start["start_step"] == best and start["parent_step"] == best
    assert start["resumed_from"].endswith(f"ckpt_{best:08d}.pt")
    assert start["moved_aside"] is not None
    assert [i.step for i in list_abandoned(run)] == [12]
    live = list_checkpoints(run)
    assert best in [i.step for i in live] and live[-1].step == best + 4
    assert min(live, key=lambda i: (i.score("mel_l1") or 1e9, i.step)).step == best

    # A resume from before the best: the best goes aside with its branch, never deleted,
    # still listed and resumable by path; "best" now means the live branch's best.
    older = min(ledger) if min(ledger) < best else None
    if older is None:
        pytest.skip("the best is the first validation: no older checkpoint to branch from")
    n += 1
    out = _nal(
        "train", "--run-dir", str(run), "--resume", str(checkpoint_paths(run, older)[0]),
        "--target-step", str(older + 1),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    aside = {i.step: i for i in list_abandoned(run)}
    assert best in aside and verify_checkpoint(aside[best]) == (True, "ok")
    assert read_manifest(aside[best].manifest_path).best.among
    assert [i.step for i in list_checkpoints(run)] == [older, older + 1]
    out = _nal("verify", "--run-dir", str(run), "--checkpoint", "best", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["step"] == older
    out = _nal("verify", "--run-dir", str(run), "--checkpoint", str(aside[best].path))
    assert out.returncode == 0, out.stdout + out.stderr
