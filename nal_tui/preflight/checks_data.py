"""Checks 1-3: configuration, data, output directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nal_tui.core.text import clean
from nal_tui.preflight.report import FAIL, PASS, WARN, CheckResult
from trainer.corpus.report import (
    RULE_BATCH,
    RULE_CORPUS_DIR,
    RULE_ENCODING,
    RULE_HEADER_ONLY,
    RULE_MELS,
    RULE_METADATA,
    RULE_MISSING,
    RULE_MONO,
    RULE_NOT_WAV,
    RULE_SAMPLE_RATE,
    RULE_SHORT_CLIPS,
    RULE_SHORTER_THAN_HOP,
    RULE_TRUNCATED,
    RULE_UNREADABLE,
    RULE_UNSEEN,
    RULE_VAL_SIZE,
    RULE_VAL_TOO_SHORT,
    Finding,
)
from trainer.rundir.layout import CHECKPOINTS_DIR, SAMPLES_DIR

# ---------------------------------------------------------------------- checks


def _try_write(d: Path) -> None:
    """Write a file in ``d``; if ``d`` is missing, in the same path created under a fresh
    temp directory of its nearest existing ancestor (removed again). OSError if not."""
    if d.exists():
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".nal-preflight-")
        os.close(fd)
        os.unlink(tmp)
        return
    anc = next(p for p in d.parents if p.exists())
    scratch = Path(tempfile.mkdtemp(dir=anc, prefix=".nal-preflight-"))
    try:
        target = scratch / d.relative_to(anc)
        target.mkdir(parents=True)
        (target / "probe").write_bytes(b"preflight")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_config(config_path: str | os.PathLike[str]) -> tuple[CheckResult, Any]:
    """1. The YAML parses, every key is known, every value in range."""
    # yaml and the config schema load when a check runs, not when the dashboard starts
    from trainer.config.locate import ConfigNotFound
    from trainer.config.schema import ConfigError
    from trainer.config.yamlfile import load

    try:
        cfg = load(config_path)
    except ConfigNotFound as e:  # a missing file has no key to edit
        return CheckResult(
            "Configuration",
            FAIL,
            str(e),
            "give --config a preset's name (e.g. demo) or an existing file; "
            "'nal-train configs' lists the presets",
        ), None
    except ConfigError as e:
        return CheckResult(
            "Configuration",
            FAIL,
            str(e),
            "edit the key named above; 'nal-train configs --show hifigan_v1' lists every key",
        ), None
    t = cfg.train
    return CheckResult(
        "Configuration",
        PASS,
        f"{config_path}: valid ({cfg.name}: {t.max_steps} steps, batch "
        f"{t.batch_size}, {cfg.audio.sample_rate} Hz)",
    ), cfg


# How to fix a broken corpus rule (trainer.corpus names the rules).
FIXES = {
    RULE_CORPUS_DIR: "download the corpus there or point data.corpus_dir at it",
    RULE_METADATA: "fix the metadata file: one 'id|text|normalized text' per line",
    RULE_VAL_SIZE: "lower data.val_size, or list more utterances",
    RULE_MISSING: "restore the missing files or remove their lines from the metadata",
    RULE_UNREADABLE: "check the files' permissions, or remove them from the metadata",
    RULE_NOT_WAV: "convert them to WAV (PCM or float), e.g. with ffmpeg or sox",
    RULE_HEADER_ONLY: "re-export them, or remove them from the metadata",
    RULE_TRUNCATED: "re-copy or re-export them (the file is shorter than its header says)",
    RULE_ENCODING: "re-export them as PCM or float WAV",
    RULE_MONO: "downmix them to mono first",
    RULE_SAMPLE_RATE: "resample the corpus, set data.resample: true, or change audio.sample_rate",
    RULE_SHORTER_THAN_HOP: "remove them from the metadata",
    RULE_SHORT_CLIPS: "fine to train on (zero-padded); drop them or lower "
    "audio.segment_size if there are many",
    RULE_VAL_TOO_SHORT: "use longer validation clips, another data.split_seed, or smaller STFTs",
    RULE_BATCH: "add clips, or lower data.val_size or train.batch_size",
    RULE_MELS: "recompute the mels with this config's audio settings (n_mels, hop_length)",
    RULE_UNSEEN: "fix data.unseen_metadata: readable, long enough "
    "clips, none of them in the training corpus",
}


def _line(f: Finding) -> str:
    return clean(f"[{f.rule}] {f.message}", 600)


def check_data(cfg: Any, nproc: int = 1) -> CheckResult:
    """2. The corpus by the trainer's own rules (``trainer.corpus.check_corpus``): an error
    fails the check (the trainer would refuse to start), a warning (short training clips,
    resampling on load) warns."""
    name = "Data"
    try:
        # the corpus rules (soundfile-free, but ~15 ms of imports) only when checked: the
        # dashboard imports preflight at start-up
        from trainer.corpus.check import check_corpus

        rep = check_corpus(cfg, nproc)
    except Exception as e:  # noqa: BLE001 - a crashing check is reported, not raised
        return CheckResult(name, FAIL, f"the corpus check failed: {clean(e, 300)}")
    root = clean(rep.root, 300)
    if rep.generated_on_start:
        return CheckResult(name, PASS, f"demo corpus {root} will be generated on the first start")
    errs, warns = rep.errors, rep.warnings
    warn_lines = [f"warning {_line(w)}" for w in warns]
    if errs:
        fix = "; ".join(dict.fromkeys(FIXES.get(f.rule, "") for f in errs if f.rule in FIXES))
        return CheckResult(
            name, FAIL, _line(errs[0]), fix, details=[_line(f) for f in errs[1:]] + warn_lines
        )
    a = cfg.audio
    unseen = len(getattr(rep, "unseen_ids", ()) or ())
    msg = (
        f"{root}: {rep.listed} clips ({len(rep.train_ids)} train, {len(rep.val_ids)} "
        f"validation{f', {unseen} unseen' if unseen else ''}), {a.sample_rate} Hz mono"
        + (", mels present" if cfg.data.mels_dir else "")
    )
    if warns:
        fix = "; ".join(dict.fromkeys(FIXES.get(w.rule, "") for w in warns if w.rule in FIXES))
        return CheckResult(name, WARN, msg, fix, details=warn_lines)
    return CheckResult(name, PASS, msg)


def check_output_dirs(run_dir: Path) -> CheckResult:
    """3. The run directory, checkpoints/ and samples/ can be created and written.

    What does not exist yet is created inside a fresh temp directory of its nearest existing
    ancestor and removed with it, so the check leaves no trace and two checks at once (the
    welcome screen's and a start dialog's) never remove each other's directories.
    """
    name = "Output directories"
    for d in (run_dir, run_dir / CHECKPOINTS_DIR, run_dir / SAMPLES_DIR):
        try:
            _try_write(d)
        except OSError as e:
            return CheckResult(
                name,
                FAIL,
                f"cannot create or write {d}: {e.strerror or e}",
                "choose another --run-dir, or fix the directory's permissions",
            )
    return CheckResult(
        name,
        PASS,
        f"{run_dir} and its {CHECKPOINTS_DIR}/, {SAMPLES_DIR}/ are writable",
    )
