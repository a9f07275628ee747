"""``train.recover``: heal a run in-process instead of ending it.

On a trigger (today: a non-finite streak of ``train.max_nonfinite_steps``), go back to the
newest *healthy* checkpoint of the live branch -- the newest one saved before the streak's
first step, that passes the full load test (the one a resume would take) -- through the
lineage rules of a resume (``resume.start_branch``: the later checkpoints are moved aside,
nothing is deleted), scale both learning rates by ``lr_scale``, keep the data where it had
got to (so the batches of the failed steps do not come back at the same steps), and go on.
After ``max_recoveries`` the run stops as it would without the policy.

One process only: under torchrun every rank would have to agree and reload together.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trainer.checkpointing.store import VerifyCache
from trainer.config.schema import Config, RecoverConfig
from trainer.rundir.checkpoints import CheckpointInfo, list_checkpoints
from trainer.train import resume as resume_mod
from trainer.train.errors import TrainerError
from trainer.train.startup import Nets

log = logging.getLogger("nal-train")


class Recovery:
    """The policy and this process's count of recoveries."""

    def __init__(self, policy: RecoverConfig | None, world_size: int) -> None:
        self.policy = policy
        self.count = 0
        self.enabled = policy is not None and world_size == 1
        if policy is not None and world_size > 1:
            log.warning("train.recover is ignored with %d processes (one process only)", world_size)

    def allows(self, trigger: str) -> bool:
        p = self.policy
        return self.enabled and p is not None and trigger in p.on and self.count < p.max_recoveries

    def healthy_checkpoint(
        self, cfg: Config, run_dir: Path, before: int, verify: VerifyCache
    ) -> tuple[CheckpointInfo, dict[str, Any]] | None:
        """The newest live checkpoint below step ``before`` that passes the load test."""
        for info in reversed(list_checkpoints(run_dir)):
            if not info.complete or info.step >= before:
                continue
            try:
                chosen, state, _ = resume_mod.choose_resume(cfg, run_dir, str(info.path), verify)
            except TrainerError as e:
                log.warning("recovery: not going back to %s: %s", info.path.name, e)
                continue
            return chosen, state
        return None


def learning_rates(nets: Nets) -> list[list[float]]:
    """Every param group's learning rate in force, G's optimizer first."""
    return [[group["lr"] for group in opt.param_groups] for opt in (nets.opt_g, nets.opt_d)]


def scale_learning_rates(
    nets: Nets, in_force: list[list[float]], scale: float
) -> tuple[float, float]:
    """Both optimizers' learning rates set to ``in_force`` (the rates before going back:
    the checkpoint's own are older, unscaled by earlier recoveries) times ``scale``; their
    schedulers go on from there. Returns the new (lr_g, lr_d)."""
    for opt, rates in zip((nets.opt_g, nets.opt_d), in_force, strict=True):
        for group, lr in zip(opt.param_groups, rates, strict=True):
            group["lr"] = lr * scale
    return nets.opt_g.param_groups[0]["lr"], nets.opt_d.param_groups[0]["lr"]
