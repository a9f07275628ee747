"""Preflight's fine-tune check (``--init-from CKPT``): the source checkpoint's hash, what its
manifest says (generator config, audio settings, an import without discriminators) against
the config to start and its corpus. Torch-free: the rules are the trainer's own
(``trainer.corpus.finetune``, ``trainer.checkpointing.lineage``); the trainer's full load test
(weights_only load, shapes) runs again when it starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nal_tui.core.text import clean
from nal_tui.preflight.report import FAIL, PASS, WARN, CheckResult
from trainer.checkpointing.lineage import config_differences, model_config
from trainer.config.build import to_dict
from trainer.corpus.finetune import compare_audio, corpus_rate
from trainer.rundir.checkpoints import checkpoint_info, verify_checkpoint
from trainer.rundir.layout import CheckpointError
from trainer.rundir.manifest import read_manifest

NAME = "Fine-tune source"


def check_init_from(
    cfg: Any, init_from: str | os.PathLike[str], generator_only: bool = False
) -> CheckResult:
    src = Path(init_from).expanduser()
    fix = "choose another checkpoint, or a config with the source's generator and audio settings"
    try:
        info = checkpoint_info(src)
        ok, reason = verify_checkpoint(info)
        if not ok:
            return CheckResult(NAME, FAIL, f"{clean(src)}: {clean(reason, 300)}", fix)
        man = read_manifest(info.manifest_path)
    except CheckpointError as e:
        return CheckResult(NAME, FAIL, f"{clean(src)}: {clean(e, 300)}", fix)
    if man.generator_only and not generator_only:
        return CheckResult(
            NAME,
            FAIL,
            f"{clean(src)} was imported without discriminators (untrained)",
            "fine-tune its generator only (--init-from-generator-only)",
        )
    saved = man.model_config or {}
    ours = model_config(to_dict(cfg))
    sections = ("generator.",) if generator_only else ("generator.", "discriminator.")
    shape_diffs = [
        d
        for d in config_differences(saved, ours)
        if d.startswith(sections) and isinstance(saved.get("generator"), dict)
    ]
    audio = compare_audio(saved.get("audio") or {}, to_dict(cfg)["audio"], corpus_rate(cfg))
    refusals = audio.refusals + [f"{d} (another model)" for d in shape_diffs]
    what = f"{clean(src)} (step {info.step:,})"
    if refusals:
        return CheckResult(
            NAME,
            FAIL,
            f"{what} does not fit this config",
            fix,
            details=[clean(r, 300) for r in refusals],
        )
    if audio.warnings:
        return CheckResult(
            NAME,
            WARN,
            f"{what}: fine-tuning across {len(audio.warnings)} audio difference(s)",
            "expected when moving to another rate or mel range; else match the source's settings",
            details=[clean(w, 300) for w in audio.warnings],
        )
    return CheckResult(NAME, PASS, f"{what}: hash verified; same generator and audio settings")
