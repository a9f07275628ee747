"""Where a run starts from: the checkpoint it resumes (chosen by the full load test before
the corpus and the models are built), the ``--init-from`` source of a fine-tune, and the
branch plan that keeps ``checkpoints/`` one linear chain.

Plain functions over the run directory, the config and the networks: nothing here holds
the Trainer (see trainer.train.startup on why no part may).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.checkpointing import lineage
from trainer.checkpointing import store as ckpt
from trainer.checkpointing.format import init_parts, load_init
from trainer.checkpointing.loadtest import LoadTest
from trainer.config.build import to_dict
from trainer.config.schema import Config
from trainer.corpus.finetune import compare_audio, corpus_rate
from trainer.events import schema as ev
from trainer.rundir.checkpoints import CheckpointInfo, checkpoint_info
from trainer.rundir.history import RunHistory
from trainer.rundir.layout import CheckpointError
from trainer.rundir.manifest import read_manifest
from trainer.rundir.resolve import (
    checkpoint_path_arg,
    find_resume_checkpoint,
    is_run_checkpoint,
    resolve_checkpoint,
)
from trainer.train.errors import TrainerError
from trainer.train.startup import Nets

log = logging.getLogger("nal-train")

Skipped = list[tuple[CheckpointInfo, str]]  # better candidates that failed, and why


@dataclass
class Origin:
    """Where this start comes from: what the run directory held, the checkpoint resumed or
    fine-tuned from (its state until loaded), and the branch this start writes."""

    history: RunHistory | None = None  # the run directory before this start (rank 0)
    resumed: CheckpointInfo | None = None
    resume_state: dict[str, Any] | None = None
    skipped: Skipped = field(default_factory=list)  # newer checkpoints that failed the test
    init: CheckpointInfo | None = None  # --init-from
    init_state: dict[str, Any] | None = None
    plan: lineage.BranchPlan | None = None  # the branch this start writes (rank 0)
    moved_aside: str | None = None  # where the abandoned live checkpoints went, if anywhere


def choose_resume(
    cfg: Config, run_dir: Path, resume: str, verify: ckpt.VerifyCache
) -> tuple[CheckpointInfo, dict[str, Any], Skipped]:
    """Pick the checkpoint (full load test; --resume latest falls back past failures)."""
    test = LoadTest(cfg)
    skipped: Skipped = []
    try:
        if str(resume) in ("latest", "best"):
            # Better candidates that fail the load test are skipped, each with an alert.
            info, skipped = find_resume_checkpoint(run_dir, resume, test)
        else:
            path = checkpoint_path_arg(run_dir, resume)
            if path.exists() and not is_run_checkpoint(run_dir, path):
                raise TrainerError(
                    f"cannot resume from {path}: it is not a checkpoint of {run_dir} "
                    f"(resume from its own run directory instead)",
                    ev.EXIT_NO_CHECKPOINT,
                )
            info = resolve_checkpoint(run_dir, path, test)
    except CheckpointError as e:
        msg = str(e) if str(e).startswith("cannot resume") else f"cannot resume: {e}"
        raise TrainerError(msg, ev.EXIT_NO_CHECKPOINT) from None
    assert test.passed is not None and test.passed[0] == info
    if _generator_only(info):
        raise TrainerError(
            f"cannot resume from {info.path}: it was imported without discriminators (no do_ "
            f"file), so they and the optimizer states are untrained; fine-tune from it instead: "
            f"--init-from {info.path} --init-from-generator-only",
            ev.EXIT_NO_CHECKPOINT,
        )
    for bad, reason in skipped:
        log.warning("skipping checkpoint %s: %s", bad.path, reason)
    verify.trust(info)  # just hashed: retention need not hash it again
    return test.passed[0], test.passed[1], skipped


def resolve_on_rank(cfg: Config, run_dir: Path, path: str) -> tuple[CheckpointInfo, dict[str, Any]]:
    """A rank > 0 resumes from the checkpoint rank 0 chose (same path; a shared filesystem)."""
    test = LoadTest(cfg)
    try:
        info = resolve_checkpoint(run_dir, path, test)
    except CheckpointError as e:
        raise TrainerError(f"cannot resume: {e}", ev.EXIT_NO_CHECKPOINT) from None
    assert test.passed is not None
    return info, test.passed[1]


@contextlib.contextmanager
def loads_into_model(
    what: str, path: Path, errors: tuple[type[BaseException], ...]
) -> Iterator[None]:
    """A state that does not fit this config's model: one TrainerError naming the file."""
    try:
        yield
    except errors as e:
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise TrainerError(
            f"cannot {what} from {path}: it does not load into this config's model "
            f"({lineage.clean_text(detail, 200)})",
            ev.EXIT_NO_CHECKPOINT,
        ) from None


def start_branch(
    run_dir: Path, resumed: CheckpointInfo | None
) -> tuple[lineage.BranchPlan, str | None, CheckpointInfo | None]:
    """Keep checkpoints/ one linear chain for this start (see lineage.plan_start).

    Called after the resume state is loaded into the models, so nothing moves for a start
    that fails. Returns the plan, where the abandoned checkpoints went (if anywhere), and
    the resumed checkpoint when it moved back onto the live branch (resuming from an
    abandoned checkpoint).
    """
    plan = lineage.plan_start(run_dir, resumed)
    start, aside = lineage.apply_plan(run_dir, plan)
    if aside is not None:
        steps = ", ".join(str(c.step) for c in plan.abandon)
        log.info(
            "new branch %s: moved the live checkpoint(s) of step %s aside to %s/",
            plan.branch,
            steps,
            aside,
        )
    if plan.restore:
        log.info(
            "moved checkpoint(s) of step %s back onto the live branch",
            ", ".join(str(c.step) for c in plan.restore),
        )
    moved_back = start if start is not None and plan.restore else None
    return plan, str(aside) if aside is not None else None, moved_back


def check_init_audio(cfg: Config, info: CheckpointInfo) -> None:
    """Refuse a source whose audio settings make its weights meaningless here (n_mels,
    hop); log a warning for each that only degrades them (sample rate, mel range, STFT)."""
    try:
        saved = read_manifest(info.manifest_path).model_config
    except CheckpointError:
        return  # the load test names what is wrong with the manifest
    source = saved.get("audio") if isinstance(saved, dict) else None
    if not isinstance(source, dict):
        return
    check = compare_audio(source, to_dict(cfg)["audio"], corpus_rate(cfg))
    if check.refusals:
        raise TrainerError(
            f"cannot initialise from {info.path}: " + "; ".join(check.refusals),
            ev.EXIT_NO_CHECKPOINT,
        )
    for w in check.warnings:
        log.warning("fine-tuning across an audio difference: %s", w)


def _generator_only(info: CheckpointInfo) -> bool:
    """An imported checkpoint that came without its discriminators (its manifest says so)."""
    try:
        return read_manifest(info.manifest_path).generator_only
    except CheckpointError:
        return False  # the load test already read this manifest


# ------------------------------------------------------------------------ --init-from


def choose_init(
    cfg: Config, init_from: str, generator_only: bool, optimizers: bool
) -> tuple[CheckpointInfo, dict[str, Any]]:
    """--init-from: the source checkpoint through the load test (hash, weights_only,
    format, the weights taken and their shapes against this config)."""
    test = LoadTest(cfg, parts=init_parts(generator_only, optimizers))
    src = Path(init_from).expanduser()
    try:
        info = checkpoint_info(src)
    except CheckpointError as e:
        raise TrainerError(f"cannot initialise from {src}: {e}", ev.EXIT_NO_CHECKPOINT) from None
    check_init_audio(cfg, info)  # before the load test: its reason is the clearer one
    ok, reason = test(info)
    if not ok or test.passed is None:
        raise TrainerError(f"cannot initialise from {info.path}: {reason}", ev.EXIT_NO_CHECKPOINT)
    if not generator_only and _generator_only(info):
        raise TrainerError(
            f"cannot initialise from {info.path}: it was imported without discriminators (no "
            f"do_ file), so they are untrained; add --init-from-generator-only",
            ev.EXIT_NO_CHECKPOINT,
        )
    for note in test.notes:
        log.warning("fine-tuning across a model-config difference (same shapes): %s", note)
    return test.passed


def init_weights(
    cfg: Config,
    nets: Nets,
    info: CheckpointInfo,
    state: dict[str, Any],
    generator_only: bool,
    optimizers: bool,
) -> None:
    """Load the source weights (and optimizer moments with --init-optimizers); the
    learning rate, its schedule, the step count and the RNG stay this run's own."""
    with loads_into_model("initialise", info.path, (KeyError, TypeError, ValueError, RuntimeError)):
        loaded = load_init(state, nets, generator_only, optimizers)
        lrs = {id(nets.opt_g): cfg.optim.lr_g, id(nets.opt_d): cfg.optim.lr_d}
        for opt in loaded:
            for group in opt.param_groups:  # never the source's decayed rate
                group.update(
                    lr=lrs[id(opt)],
                    initial_lr=lrs[id(opt)],
                    betas=tuple(cfg.optim.betas),
                    weight_decay=cfg.optim.weight_decay,
                )
    what = "generator" if generator_only else "generator and discriminators"
    opts = ", optimizer moments" if optimizers else ""
    log.info(
        "initialised the %s%s from %s (step %d, sha256 %s); fresh schedule from step 0 at lr_g %g",
        what,
        opts,
        info.path,
        info.step,
        (info.sha256 or "")[:12],
        cfg.optim.lr_g,
    )
