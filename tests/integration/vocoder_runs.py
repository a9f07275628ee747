"""Run directories holding a generator checkpoint, for the vocode and export tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.conftest import DEMO_CONFIG
from trainer.checkpointing.store import save_checkpoint
from trainer.config.build import from_dict
from trainer.config.schema import Config
from trainer.config.yamlfile import dump, load
from trainer.models import build_models
from trainer.rundir.layout import CHECKPOINTS_DIR, CONFIG_FILE, atomic_write_text


def make_run(
    run_dir: Path,
    data: dict[str, Any] | None = None,
    *,
    step: int = 10,
    seed: int = 0,
    **save_kw: Any,
) -> Config:
    """A run dir with ``config.yaml`` and one verified checkpoint of freshly initialised models
    (``save_kw``: more manifest fields for save_checkpoint, e.g. validation and best)."""
    cfg = load(DEMO_CONFIG) if data is None else from_dict(data, "test")
    (run_dir / CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, dump(cfg))
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
