"""Checks 1-3: configuration, data, output directories."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path
from typing import Any

from trainer import rundir

from .headers import read_npy_shape, read_wav_header
from .report import (
    DETAILS_MAX,
    FAIL,
    MEL_FRAME_TOLERANCE,
    PASS,
    WARN,
    WAV_FORMATS,
    CheckResult,
)

# ---------------------------------------------------------------------- checks


def check_config(config_path: str | os.PathLike[str]) -> tuple[CheckResult, Any]:
    """1. The YAML parses, every key is known, every value in range."""
    from trainer.config import ConfigError, load

    try:
        cfg = load(config_path)
    except ConfigError as e:
        return CheckResult(
            "Configuration",
            FAIL,
            str(e),
            "edit the key named above; config/hifigan_v1.yaml lists every key",
        ), None
    t = cfg.train
    return CheckResult(
        "Configuration",
        PASS,
        f"{config_path}: valid ({cfg.name}: {t.max_steps} steps, batch "
        f"{t.batch_size}, {cfg.audio.sample_rate} Hz)",
    ), cfg


def check_data(cfg: Any, nproc: int = 1) -> CheckResult:
    """2. Corpus, metadata and WAVs exist and match the config; mels when configured."""
    name = "Data"
    d, a = cfg.data, cfg.audio
    root = Path(d.corpus_dir).expanduser()
    if not root.is_dir():
        if d.demo:
            return CheckResult(
                name, PASS, f"demo corpus {root} will be generated on the first start"
            )
        return CheckResult(
            name,
            FAIL,
            f"{root}: corpus directory not found (data.corpus_dir)",
            "download the corpus there or point data.corpus_dir at it",
        )
    meta = root / d.metadata
    ids, err = _metadata_ids(meta)
    if err:
        return CheckResult(name, FAIL, err, f"fix {meta}: one 'id|text|normalized text' per line")
    fails: list[str] = []
    warns: list[str] = []
    fix: list[str] = []
    wav_dir = root / "wavs"
    missing = [i for i in ids if not (wav_dir / f"{i}.wav").is_file()]
    if missing:
        fails.append(
            f"{len(missing)} of {len(ids)} WAV files listed in {meta} are missing "
            f"from {wav_dir}: {_some(f'{m}.wav' for m in missing)}"
        )
        fix.append("restore the missing files or remove their lines from the metadata")
    frames: dict[str, int | None] = {}
    bad, stereo, short, rates = [], [], [], {}
    for i in ids:
        if i in missing:
            continue
        p = wav_dir / f"{i}.wav"
        try:
            h = read_wav_header(p)
        except (OSError, ValueError, struct.error) as e:
            bad.append(f"{p.name} ({getattr(e, 'strerror', None) or e})")
            continue
        if h.format_tag not in WAV_FORMATS:
            bad.append(f"{p.name} (unsupported WAV encoding, format tag {h.format_tag:#x})")
            continue
        if h.channels != 1:
            stereo.append(f"{p.name} ({h.channels} channels)")
        if h.sample_rate != a.sample_rate:
            rates.setdefault(h.sample_rate, []).append(p.name)
        n = None if h.frames is None else round(h.frames * a.sample_rate / h.sample_rate)
        if n is not None and n < a.hop_length:
            short.append(f"{p.name} ({h.frames} samples)")
        frames[i] = n
    if bad:
        fails.append(f"{len(bad)} WAV file(s) cannot be read: {_some(bad)}")
        fix.append("re-export them as PCM or float WAV")
    if stereo:
        fails.append(f"{len(stereo)} file(s) are not mono: {_some(stereo)}")
        fix.append("downmix them to mono first")
    if short:
        fails.append(f"{len(short)} file(s) are shorter than one hop: {_some(short)}")
        fix.append("remove them from the metadata")
    for sr, names in sorted(rates.items()):
        msg = (
            f"{len(names)} file(s) are {sr} Hz, the config says audio.sample_rate "
            f"{a.sample_rate}: {_some(names)}"
        )
        if d.resample:
            warns.append(msg + " (they will be resampled on load)")
        else:
            fails.append(msg + " (data.resample is false)")
            fix.append("resample the corpus, set data.resample: true, or change audio.sample_rate")
    n_train = len(ids) - d.val_size
    if n_train < cfg.train.batch_size * nproc:
        fails.append(
            f"{len(ids)} clips minus data.val_size {d.val_size} leaves {n_train} for "
            f"training, fewer than one batch (train.batch_size {cfg.train.batch_size}"
            + (f" x {nproc} processes" if nproc > 1 else "")
            + ")"
        )
        fix.append("add clips, or lower data.val_size or train.batch_size")
    if d.mels_dir is not None:
        _check_mels(Path(d.mels_dir).expanduser(), ids, frames, a, fails, fix)
    if fails:
        return CheckResult(
            name, FAIL, fails[0], "; ".join(dict.fromkeys(fix)), details=fails[1:] + warns
        )
    rate_note = f", {a.sample_rate} Hz mono"
    msg = f"{root}: {len(ids)} clips ({n_train} train, {d.val_size} validation){rate_note}"
    if warns:
        return CheckResult(
            name,
            WARN,
            msg,
            "set audio.sample_rate to the corpus rate, or "
            "resample the corpus once to save time at load",
            details=warns,
        )
    return CheckResult(name, PASS, msg + (", mels present" if d.mels_dir else ""))


def _metadata_ids(meta: Path) -> tuple[list[str], str]:
    try:
        text = meta.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return [], f"{meta}: metadata file not found (data.metadata)"
    except OSError as e:
        return [], f"{meta}: cannot read: {e.strerror}"
    except UnicodeDecodeError:
        return [], f"{meta}: not valid UTF-8"
    ids, seen = [], set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.split("|")
        uid = cols[0].strip()
        if len(cols) not in (2, 3) or not uid or "/" in uid:
            return [], f"{meta}:{n}: expected 'id|text|normalized text'"
        if uid in seen:
            return [], f"{meta}:{n}: duplicate utterance id {uid!r}"
        seen.add(uid)
        ids.append(uid)
    if not ids:
        return [], f"{meta}: no utterances listed"
    return ids, ""


def _check_mels(
    mels: Path,
    ids: list[str],
    frames: dict[str, int | None],
    a: Any,
    fails: list[str],
    fix: list[str],
) -> None:
    if not mels.is_dir():
        fails.append(f"{mels}: mel directory not found (data.mels_dir)")
        fix.append("compute the mels there, or remove data.mels_dir to compute them on the fly")
        return
    missing, wrong = [], []
    for i in ids:
        p = mels / f"{i}.npy"
        if not p.is_file():
            missing.append(p.name)
            continue
        try:
            shape = read_npy_shape(p)
        except (OSError, ValueError, struct.error) as e:
            wrong.append(f"{p.name} ({e})")
            continue
        if len(shape) == 3 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 2 or shape[0] != a.n_mels:
            wrong.append(f"{p.name} (shape {shape}, expected [{a.n_mels}, frames])")
            continue
        n = frames.get(i)
        if n is not None and abs(shape[1] - n // a.hop_length) > MEL_FRAME_TOLERANCE:
            wrong.append(f"{p.name} ({shape[1]} frames, its audio gives {n // a.hop_length})")
    if missing:
        fails.append(f"{len(missing)} of {len(ids)} mels missing from {mels}: {_some(missing)}")
    if wrong:
        fails.append(f"{len(wrong)} mel file(s) do not match the config: {_some(wrong)}")
    if missing or wrong:
        fix.append("recompute the mels with this config's audio settings (n_mels, hop_length)")


def _some(items: Any) -> str:
    items = list(items)
    more = len(items) - DETAILS_MAX
    return ", ".join(items[:DETAILS_MAX]) + (f" ... and {more} more" if more > 0 else "")


def check_output_dirs(run_dir: Path) -> CheckResult:
    """3. The run directory, checkpoints/ and samples/ can be created and written."""
    name = "Output directories"
    created: list[Path] = []
    try:
        for d in (run_dir, run_dir / rundir.CHECKPOINTS_DIR, run_dir / rundir.SAMPLES_DIR):
            missing = [p for p in (d, *d.parents) if not p.exists()]
            for p in reversed(missing):
                p.mkdir()
                created.append(p)
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".nal-preflight-")
            try:
                os.write(fd, b"preflight")
            finally:
                os.close(fd)
                os.unlink(tmp)
    except OSError as e:
        where = getattr(e, "filename", None) or run_dir
        return CheckResult(
            name,
            FAIL,
            f"cannot create or write {where}: {e.strerror or e}",
            "choose another --run-dir, or fix the directory's permissions",
        )
    finally:
        for p in reversed(created):  # leave no trace: the trainer creates them itself
            try:
                p.rmdir()
            except OSError:
                pass
    return CheckResult(
        name,
        PASS,
        f"{run_dir} and its {rundir.CHECKPOINTS_DIR}/, {rundir.SAMPLES_DIR}/ are writable",
    )
