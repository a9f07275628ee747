"""Run directories holding a generator checkpoint, for the vocode and export tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.conftest import DEMO_CONFIG
from trainer import config as config_mod
from trainer import rundir
from trainer.checkpoint import save_checkpoint
from trainer.models import build_models


def make_run(
    run_dir: Path,
    data: dict[str, Any] | None = None,
    *,
    step: int = 10,
    seed: int = 0,
    **save_kw: Any,
) -> config_mod.Config:
    """A run dir with ``config.yaml`` and one verified checkpoint of freshly initialised models
    (``save_kw``: more manifest fields for save_checkpoint, e.g. validation and best)."""
    cfg = config_mod.load(DEMO_CONFIG) if data is None else config_mod.from_dict(data, "test")
    (run_dir / rundir.CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
    rundir.atomic_write_text(run_dir / rundir.CONFIG_FILE, config_mod.dump(cfg))
    torch.manual_seed(seed)
    g, d = build_models(cfg)
    state = {
        "format": 1,
        "generator": g.state_dict(),
        "discriminators": d.state_dict(),
        "step": step,
        "epoch": 0,
    }
    save_checkpoint(run_dir, step, 0, state, **save_kw)
    return cfg
