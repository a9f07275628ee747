"""Training states and hostile checkpoints for tests (real files, real torch.save)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import DEMO_CONFIG
from trainer.config.build import replace, to_dict
from trainer.config.yamlfile import load


def small_state(step: int) -> dict[str, Any]:
    """A tiny stand-in state (a step and one tensor) for tests of the file handling."""
    import torch

    return {"step": step, "w": torch.full((64,), float(step))}


def demo_cfg(**sections: dict[str, Any]):
    cfg = load(DEMO_CONFIG)
    return replace(cfg, **sections) if sections else cfg


def other_model_cfg():
    """The demo config with another generator width: a different model."""
    return demo_cfg(generator={"upsample_initial_channel": 32})


def train_state(cfg, step: int) -> dict[str, Any]:
    """A format-1 training state for ``cfg``'s models, written out key by key as format 1
    was saved: a fixed sample of the on-disk format (trainer.checkpointing.format), so a
    change to the format that stops reading it fails the tests that load it."""
    import torch

    from trainer.checkpointing.rng import capture_rng_state
    from trainer.models import build_models

    g, d = build_models(cfg)
    og, od = torch.optim.AdamW(g.parameters()), torch.optim.AdamW(d.parameters())
    return {
        "format": 1,
        "config": to_dict(cfg),
        "generator": g.state_dict(),
        "discriminators": d.state_dict(),
        "opt_g": og.state_dict(),
        "opt_d": od.state_dict(),
        "sched_g": torch.optim.lr_scheduler.ExponentialLR(og, 0.9).state_dict(),
        "sched_d": torch.optim.lr_scheduler.ExponentialLR(od, 0.9).state_dict(),
        "step": step,
        "epoch": 0,
        "batch_in_epoch": step,
        "rng": capture_rng_state(),
    }


class RunsCode:
    """Unpickling this runs code: __reduce__ names a callable (os.mkdir) and its argument."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


# What each hostile kind is, and a fragment of the one-line reason the load test gives.
HOSTILE_KINDS = {
    "code": "pickled Python objects or code (posix.mkdir)",
    "config": "saved with a different model configuration: generator.upsample_initial_channel: "
    "32 in the checkpoint, 64 now",
    "format": "it has format 2; this nal-train reads format 1",
    "keys": "it lacks the key(s) opt_d",
}


def save_hostile(run_dir: Path, step: int, kind: str, marker: Path) -> None:
    """Replace checkpoint ``step`` with one whose hash verifies but which cannot be used."""
    from trainer.checkpointing.lineage import model_config
    from trainer.checkpointing.store import save_checkpoint

    cfg = other_model_cfg() if kind == "config" else demo_cfg()
    state = train_state(cfg, step)
    if kind == "code":
        state["opt_g"] = RunsCode(marker)
    elif kind == "format":
        state["format"] = 2
    elif kind == "keys":
        del state["opt_d"]
    save_checkpoint(run_dir, step, 0, state, model_config=model_config(to_dict(cfg)))
