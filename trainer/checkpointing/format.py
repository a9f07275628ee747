"""The training checkpoint's on-disk format: its version, every key, and how the whole
training state is built, checked and restored.

The one module that types a key of the state: a format change is a change here (bump
``FORMAT``) plus a migration test. Everything exact resume needs (weights, optimizer and
scheduler states, AMP scaler, RNG states, sampler position, the run's target) is one
``weights_only=True``-loadable dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from trainer.checkpointing.lineage import short_value
from trainer.checkpointing.rng import capture_rng_state, restore_rng_state

FORMAT = 1  # a checkpoint with another format is refused by name, never half-loaded

# Every key of the state, in the order it is written.
K_FORMAT = "format"
K_CONFIG = "config"  # the resolved config as plain data (its model part is compared on load)
K_GENERATOR = "generator"
K_DISCRIMINATORS = "discriminators"
K_OPT_G = "opt_g"
K_OPT_D = "opt_d"
K_SCHED_G = "sched_g"
K_SCHED_D = "sched_d"
K_SCALER = "scaler"  # the AMP grad scaler's state (empty when it is disabled)
K_STEP = "step"
K_EPOCH = "epoch"
K_BATCH_IN_EPOCH = "batch_in_epoch"  # batches of ``epoch`` already consumed
K_WORLD_SIZE = "world_size"  # to re-express the sampler position under another world size
K_TARGET_STEP = "target_step"  # a resume without --target-step keeps the run's own target
K_RNG = "rng"

# What a resume cannot do without; the rest has a default (an older save may lack it).
REQUIRED_KEYS = (
    K_GENERATOR,
    K_DISCRIMINATORS,
    K_OPT_G,
    K_OPT_D,
    K_SCHED_G,
    K_SCHED_D,
    K_STEP,
    K_EPOCH,
    K_BATCH_IN_EPOCH,
    K_RNG,
)
OPTIONAL_KEYS = (K_FORMAT, K_CONFIG, K_SCALER, K_WORLD_SIZE, K_TARGET_STEP)
WEIGHT_PARTS = (K_GENERATOR, K_DISCRIMINATORS)  # the parts whose tensor shapes are checked


@dataclass
class Position:
    """Where training stands: the next step to run is ``step + 1``."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already consumed


class TrainingParts(Protocol):
    """The stateful parts of a run (``trainer.train.startup.Nets`` is one)."""

    g_raw: nn.Module
    d_raw: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler


def unwrap(m: nn.Module) -> nn.Module:
    """The plain module under DDP or torch.compile: the one whose keys are saved."""
    return m.module if isinstance(m, DDP) else getattr(m, "_orig_mod", m)


def build_state(
    parts: TrainingParts,
    scaler: torch.amp.GradScaler,
    pos: Position,
    *,
    config: dict[str, Any],
    world_size: int,
    target_step: int,
) -> dict[str, Any]:
    """The whole training state of this process, as one checkpoint dict."""
    return {
        K_FORMAT: FORMAT,
        K_CONFIG: config,
        K_GENERATOR: unwrap(parts.g_raw).state_dict(),
        K_DISCRIMINATORS: unwrap(parts.d_raw).state_dict(),
        K_OPT_G: parts.opt_g.state_dict(),
        K_OPT_D: parts.opt_d.state_dict(),
        K_SCHED_G: parts.sched_g.state_dict(),
        K_SCHED_D: parts.sched_d.state_dict(),
        K_SCALER: scaler.state_dict(),
        K_STEP: pos.step,
        K_EPOCH: pos.epoch,
        K_BATCH_IN_EPOCH: pos.batch_in_epoch,
        K_WORLD_SIZE: world_size,
        K_TARGET_STEP: target_step,
        K_RNG: capture_rng_state(),
    }


def load_state(
    state: Mapping[str, Any],
    parts: TrainingParts,
    scaler: torch.amp.GradScaler,
    world_size: int,
) -> tuple[Position, int | None]:
    """Restore a state built by :func:`build_state` (RNG included); returns the position,
    re-expressed for ``world_size``, and the run's saved target step (None: not saved)."""
    parts.g_raw.load_state_dict(state[K_GENERATOR])
    parts.d_raw.load_state_dict(state[K_DISCRIMINATORS])
    parts.opt_g.load_state_dict(state[K_OPT_G])
    parts.opt_d.load_state_dict(state[K_OPT_D])
    parts.sched_g.load_state_dict(state[K_SCHED_G])
    parts.sched_d.load_state_dict(state[K_SCHED_D])
    if state.get(K_SCALER):
        scaler.load_state_dict(state[K_SCALER])
    batch = int(state[K_BATCH_IN_EPOCH])
    saved_world = int(state.get(K_WORLD_SIZE, 1))
    if saved_world != world_size:
        # Same samples consumed, re-expressed in batches of the new world size.
        batch = batch * saved_world // world_size
    pos = Position(int(state[K_STEP]), int(state[K_EPOCH]), batch)
    target = int(state[K_TARGET_STEP]) if K_TARGET_STEP in state else None
    restore_rng_state(state[K_RNG])
    return pos, target


# ------------------------------------------------------------------ fine-tuning (--init-from)


def init_parts(generator_only: bool, optimizers: bool) -> tuple[str, ...]:
    """The keys a fine-tune takes from its source: weights, and optimizer moments if asked."""
    parts = (K_GENERATOR,) if generator_only else (K_GENERATOR, K_DISCRIMINATORS)
    if optimizers:
        parts += (K_OPT_G,) if generator_only else (K_OPT_G, K_OPT_D)
    return parts


def load_init(
    state: Mapping[str, Any],
    parts: TrainingParts,
    generator_only: bool,
    optimizers: bool,
) -> list[torch.optim.Optimizer]:
    """Load a fine-tune's source weights (and optimizer moments); returns the optimizers
    loaded, whose hyperparameters the caller resets to this run's own."""
    parts.g_raw.load_state_dict(state[K_GENERATOR])
    if not generator_only:
        parts.d_raw.load_state_dict(state[K_DISCRIMINATORS])
    loaded = []
    if optimizers:
        pairs = [(parts.opt_g, K_OPT_G)]
        if not generator_only:
            pairs.append((parts.opt_d, K_OPT_D))
        for opt, key in pairs:
            opt.load_state_dict(state[key])
            loaded.append(opt)
    return loaded


# ------------------------------------------------------------------ reading a saved state


def format_problem(state: Any) -> str | None:
    """Why ``state`` is not a training state of this format (None: it is)."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a training state dict"
    fmt = state.get(K_FORMAT)
    if fmt is None:
        return f"it has no '{K_FORMAT}' field (not a nal-train training checkpoint)"
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        return f"its format is {short_value(fmt)}, not a format number"
    if fmt != FORMAT:
        newer = " (saved by a newer nal-train?)" if fmt > FORMAT else ""
        return f"it has format {fmt}; this nal-train reads format {FORMAT}{newer}"
    return None


def missing_keys(state: Mapping[str, Any], keys: tuple[str, ...] = REQUIRED_KEYS) -> list[str]:
    return [k for k in keys if k not in state]


def saved_step(state: Mapping[str, Any]) -> Any:
    """The step a state says it holds (not yet checked to be an int)."""
    return state.get(K_STEP)


def saved_config(state: Mapping[str, Any]) -> dict[str, Any] | None:
    cfg = state.get(K_CONFIG)
    return cfg if isinstance(cfg, dict) else None


def weights(state: Mapping[str, Any], part: str = K_GENERATOR) -> Any:
    """The state dict of one network (``K_GENERATOR`` or ``K_DISCRIMINATORS``), or None."""
    return state.get(part)
