"""Saving the run's checkpoints (rank 0): the weights checked finite, the file and its
manifest (lineage, the validation at that step, the best-K note), the ``checkpoint``
record, and retention.

A part the Trainer keeps; it holds no reference to the Trainer (see trainer.train.startup).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trainer.checkpointing import lineage
from trainer.checkpointing import store as ckpt
from trainer.config.schema import Config
from trainer.events import schema as ev
from trainer.rundir.retention import apply_retention
from trainer.train.errors import TrainerError
from trainer.train.ledger import BestTracker, Verdict
from trainer.train.runlog import EventLog
from trainer.train.startup import Nets

log = logging.getLogger("nal-train")


def weights_finite(nets: Nets) -> bool:
    flags = [torch.isfinite(p).all() for m in (nets.g_raw, nets.d_raw) for p in m.parameters()]
    return bool(torch.stack(flags).all().item())


class Checkpointer:
    """Writes checkpoints into ``run_dir`` and knows the step of the last one on disk."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        model_cfg: dict[str, Any],
        verify: ckpt.VerifyCache,
        best: BestTracker | None,
        events: EventLog,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.model_cfg = model_cfg
        self.verify = verify
        self.best = best
        self.events = events
        self.last_step = -1  # the step of the checkpoint on disk last (saved or resumed)

    def save(
        self,
        step: int,
        epoch: int,
        nets: Nets,
        state: Callable[[], dict[str, Any]],
        plan: lineage.BranchPlan | None,
        validation: dict[str, dict[str, float]] | None,
        verdict: Verdict | None,
    ) -> None:
        """Save the state ``state()`` returns as the checkpoint of ``step``.

        ``validation`` and ``verdict``: the validation made at this step (None when the
        step was not validated).
        """
        started = time.perf_counter()
        if not weights_finite(nets):
            raise TrainerError(
                f"step {step}: weights are not finite; refusing to save them", ev.EXIT_NONFINITE
            )
        me = self.cfg.checkpoint.milestone_every
        milestone = bool(me) and step % me == 0
        note = None
        if self.best is not None:
            note = self.best.note(verdict if verdict is not None and verdict.step == step else None)
        info = ckpt.save_checkpoint(
            self.run_dir,
            step,
            epoch,
            state(),
            milestone=milestone,
            config_sha256=lineage.config_digest(self.model_cfg),
            branch=plan.branch if plan is not None else None,
            parent=plan.parent if plan is not None else None,
            model_config=self.model_cfg,
            validation=validation,
            best=note,
        )
        self.verify.trust(info)
        self.last_step = step
        # The ledger after this save, from disk: its checkpoints are kept by retention.
        ledger = [i.step for i in self.best.ledger()] if self.best is not None else []
        self.events.emit(
            ev.Checkpoint(
                step=step,
                path=str(info.path.relative_to(self.run_dir)),
                bytes=info.bytes,
                sha256=info.sha256 or "",
                milestone=milestone,
                duration=round(time.perf_counter() - started, 4),
                best=step in ledger,
                metric=note.metric if note is not None else None,
                score=note.score if note is not None else None,
                best_steps=ledger,
            )
        )
        if step in ledger:
            log.info(
                "step %d: among the best %d by %s (best steps: %s)",
                step,
                len(ledger),
                note.metric if note is not None else "?",
                ", ".join(map(str, ledger)),
            )
        for old in apply_retention(
            self.run_dir,
            self.cfg.checkpoint.keep_last,
            protect_steps=(step, *ledger),
            verify=self.verify,
        ):
            log.info("retention: removed %s", old.path.name)
        self.events.sync()
        log.info("step %d: checkpoint %s (%d bytes)", step, info.path.name, info.bytes)
