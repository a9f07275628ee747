"""The run's checkpoints (rank 0): when to save (the cadence, a new best, the end), the
weights checked finite, the file and its manifest (lineage, the validation at that step,
the best-K note), the ``checkpoint`` and ``milestone`` records, and retention.

A part the Trainer keeps; it holds no reference to the Trainer (see trainer.train.startup).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from trainer.checkpointing import lineage
from trainer.checkpointing.format import Position, build_state
from trainer.checkpointing.store import VerifyCache, save_checkpoint
from trainer.config.build import to_dict
from trainer.config.schema import Config
from trainer.events import schema as ev
from trainer.rundir.layout import checkpoint_paths
from trainer.rundir.retention import apply_retention
from trainer.train.errors import TrainerError, storage
from trainer.train.evaluation import Evaluation
from trainer.train.ledger import BestTracker
from trainer.train.nonfinite import NonFinitePolicy
from trainer.train.runlog import EventLog
from trainer.train.startup import Nets

log = logging.getLogger("nal-train")


def weights_finite(nets: Nets) -> bool:
    flags = [torch.isfinite(p).all() for m in (nets.g_raw, nets.d_raw) for p in m.parameters()]
    return bool(torch.stack(flags).all().item())


class Checkpointer:
    """Decides when to checkpoint (``checkpoint.every``, a validation that enters the best
    K, the run's end), writes checkpoints into ``run_dir`` and knows the step of the last
    one on disk."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        verify: VerifyCache,
        best: BestTracker | None,
        events: EventLog,
        nets: Nets,
        scaler: torch.amp.GradScaler,
        evaluation: Evaluation,
        nonfinite: NonFinitePolicy,
        world_size: int,
    ) -> None:
        self.cfg = cfg
        self.every = cfg.checkpoint.every
        self.milestone_every = cfg.checkpoint.milestone_every
        self.run_dir = run_dir
        self.cfg_dict = to_dict(cfg)
        self.model_cfg = lineage.model_config(self.cfg_dict)
        self.verify = verify
        self.best = best
        self.events = events
        self.nets = nets
        self.scaler = scaler
        self.evaluation = evaluation
        self.nonfinite = nonfinite
        self.world_size = world_size
        self.plan: lineage.BranchPlan | None = None  # the branch this start writes (rank 0)
        self.last_step = -1  # the step of the checkpoint on disk last (saved or resumed)

    def due(self, step: int) -> bool:
        """At the cadence, or when this step's validation entered the best K: the ledger
        only ever names weights that are on disk, and the weights validated are the ones
        saved."""
        _, verdict = self.evaluation.at(step)
        return step % self.every == 0 or (verdict is not None and verdict.enters)

    def maybe_save(self, pos: Position, target_step: int, *, last: bool = False) -> bool:
        """Save when due (``last``: at the run's end, unless this step is on disk already).

        A due save right after non-finite steps is skipped with an alert: the weights may
        be the product of a skipped streak's neighbours, and the last good checkpoint stays
        the newest. A failed write raises one StorageError naming the checkpoint.
        """
        if self.last_step == pos.step or not (last or self.due(pos.step)):
            return False  # on disk already (e.g. the checkpoint a recovery went back to)
        if not last:
            n_bad = self.nonfinite.streak()
            if n_bad:
                self.events.emit(
                    ev.Alert(
                        kind=ev.ALERT_CHECKPOINT_SKIPPED,
                        step=pos.step,
                        message=f"checkpoint skipped: the last {n_bad} step(s) were non-finite",
                    )
                )
                return False
        path = checkpoint_paths(self.run_dir, pos.step)[0]
        with storage("save checkpoint", path, during_save=True):
            self.save(pos, target_step)
        return True

    def milestone(self, step: int) -> None:
        """A ``milestone`` record every ``checkpoint.milestone_every`` steps."""
        me = self.milestone_every
        if me and step % me == 0:
            self.events.emit(
                ev.Milestone(step=step, name=f"step {step:,}", message=f"reached step {step:,}")
            )

    def save(self, pos: Position, target_step: int) -> None:
        """Save the training state at ``pos`` as its step's checkpoint, with the validation
        made at that step (if any) in its manifest."""
        step, epoch = pos.step, pos.epoch
        validation, verdict = self.evaluation.at(step)
        started = time.perf_counter()
        if not weights_finite(self.nets):
            raise TrainerError(
                f"step {step}: weights are not finite; refusing to save them", ev.EXIT_NONFINITE
            )
        me = self.milestone_every
        milestone = bool(me) and step % me == 0
        note = None
        if self.best is not None:
            note = self.best.note(verdict if verdict is not None and verdict.step == step else None)
        state = build_state(
            self.nets,
            self.scaler,
            pos,
            config=self.cfg_dict,
            world_size=self.world_size,
            target_step=target_step,
        )
        info = save_checkpoint(
            self.run_dir,
            step,
            epoch,
            state,
            milestone=milestone,
            config_sha256=lineage.config_digest(self.model_cfg),
            branch=self.plan.branch if self.plan is not None else None,
            parent=self.plan.parent if self.plan is not None else None,
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
