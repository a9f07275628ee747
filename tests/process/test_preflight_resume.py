"""Preflight's resume check runs the trainer's own load test (``nal-train verify --json`` in
a subprocess): a checkpoint whose hash verifies but whose content cannot be used fails
preflight as it fails the trainer (issue 8 §4), and ``latest`` names what it skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.ckpt_factory import demo_cfg, save_hostile, train_state
from tests.conftest import DEMO_CONFIG, ROOT
from trainer.checkpointing.lineage import model_config
from trainer.checkpointing.store import save_checkpoint
from trainer.config.build import to_dict


def _preflight(run: Path, resume: str) -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "nal_tui", "--preflight", "--json", "--skip-models",
         "--config", str(DEMO_CONFIG), "--run-dir", str(run), "--resume", resume],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    return {c["name"]: c for c in json.loads(p.stdout)["checks"]}["Run state"]


def test_preflight_resume_runs_the_load_test(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = demo_cfg()
    mc = model_config(to_dict(cfg))
    save_checkpoint(run, 10, 0, train_state(cfg, 10), model_config=mc)
    save_hostile(run, 20, "config", tmp_path / "marker")  # hash fine, another model
    latest = _preflight(run, "latest")
    assert latest["status"] == "pass" and "resume from step 10" in latest["message"]
    assert any("ckpt_00000020.pt" in d and "different model" in d for d in latest["details"])
    explicit = _preflight(run, str(run / "checkpoints" / "ckpt_00000020.pt"))
    assert explicit["status"] == "fail", explicit
    assert "generator.upsample_initial_channel" in explicit["message"]
    assert "weights_only=False" not in json.dumps(explicit)
