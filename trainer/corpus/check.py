"""The corpus rules applied: :func:`check_corpus` gives one verdict on every file.

The trainer refuses a corpus with errors (exit 2) and reports the warnings; preflight
shows the same report.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from trainer.corpus.headers import HeaderError, read_npy_header, read_wav_header
from trainer.corpus.metadata import MetadataLine, parse_metadata, split_ids
from trainer.corpus.report import (
    LEVEL_ERROR,
    LEVEL_WARNING,
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
    Bucket,
    Clip,
    CorpusReport,
    DataError,
    Finding,
    name_some,
)

# Precomputed mels: frames x hop must lie within one hop of the audio length (a centred STFT
# has one frame more than len // hop, an uncentred one len // hop); see mel_length_problem.
MEL_FRAME_TOLERANCE = 1
TICK_EVERY = 256  # files between calls of check_corpus's ``tick``


def min_validation_samples(cfg: Any) -> int:
    """The shortest validation clip (after trimming to whole hops) every STFT accepts.

    Validation runs the mel spectrogram (``audio.n_fft``) and the reconstruction loss and
    metrics over every ``loss.stft_resolutions`` entry, on the whole clip: each needs at
    least one full window of audio.
    """
    sizes = [int(cfg.audio.n_fft)] + [int(r[0]) for r in cfg.loss.stft_resolutions]
    return max(max(sizes), int(cfg.audio.hop_length))


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else base / q


def check_corpus(cfg: Any, nproc: int = 1, tick: Callable[[], None] | None = None) -> CorpusReport:
    """Apply every corpus rule to ``cfg``'s data (a ``trainer.config.Config``).

    ``nproc`` is the number of training processes (each needs a batch). ``tick`` is called
    every few hundred files and may raise to cancel a long check (the trainer's stop flag).
    Paths: ``corpus_dir`` and ``mels_dir`` relative to the working directory, ``metadata``
    to ``corpus_dir``.
    """
    d, a = cfg.data, cfg.audio
    root = Path(d.corpus_dir).expanduser()
    report = CorpusReport(root)
    add = report.findings.append
    if not root.is_dir():
        if d.demo and not root.exists():
            report.generated_on_start = True
            return report
        add(
            Finding(
                LEVEL_ERROR,
                RULE_CORPUS_DIR,
                f"{root}: corpus directory not found (data.corpus_dir)",
                (str(root),),
            )
        )
        return report
    meta = _resolve(root, d.metadata)
    try:
        rows = parse_metadata(meta)
    except DataError as e:
        add(Finding(LEVEL_ERROR, RULE_METADATA, str(e), (str(meta),)))
        return report
    report.listed = len(rows)
    if len(rows) <= d.val_size:
        add(
            Finding(
                LEVEL_ERROR,
                RULE_VAL_SIZE,
                f"{meta}: lists {len(rows)} utterance(s) but data.val_size is {d.val_size}; "
                f"at least one must be left for training (lower data.val_size)",
                (str(meta),),
            )
        )
    mels_dir: Path | None = None
    if d.mels_dir is not None:
        mels_dir = Path(d.mels_dir).expanduser()
        if not mels_dir.is_dir():
            add(
                Finding(
                    LEVEL_ERROR,
                    RULE_MELS,
                    f"{mels_dir}: mel directory not found (data.mels_dir)",
                    (str(mels_dir),),
                )
            )
            mels_dir = None

    buckets: dict[str, Bucket] = {}
    rates: dict[int, list[Path]] = {}
    report.clips = _check_rows(rows, root / "wavs", meta, cfg, mels_dir, buckets, rates, tick, add)
    unseen_rows = _unseen_rows(root, d, add)
    if unseen_rows is not None:
        umeta = _resolve(root, d.unseen_metadata)
        report.unseen = _check_rows(
            unseen_rows, umeta.parent / "wavs", umeta, cfg, None, buckets, rates, tick, add
        )
        report.unseen_ids = sorted(r.id for r in unseen_rows if r.id in report.unseen)
    for rule, what in (
        (RULE_UNREADABLE, "files cannot be read"),
        (RULE_NOT_WAV, "files are not RIFF/WAVE"),
        (RULE_HEADER_ONLY, "WAV files hold no audio"),
        (RULE_TRUNCATED, "WAV files are truncated"),
        (RULE_ENCODING, "WAV files use an unsupported encoding"),
        (RULE_MONO, "files are not mono"),
        (RULE_SHORTER_THAN_HOP, "files are shorter than one hop"),
        (RULE_MELS, "mel files do not match"),
    ):
        f = buckets.get(rule, Bucket()).finding(LEVEL_ERROR, rule, what)
        if f is not None:
            add(f)
    for sr, paths in sorted(rates.items()):
        rate = Bucket()
        for p in paths:
            rate.add(p, f"sample rate is {sr} Hz but audio.sample_rate is {a.sample_rate} Hz")
        level = LEVEL_WARNING if d.resample else LEVEL_ERROR
        f = rate.finding(level, RULE_SAMPLE_RATE, f"files are {sr} Hz")
        note = "resampled on load" if d.resample else "resampling is disabled: data.resample=false"
        if f is not None:
            add(dataclasses.replace(f, message=f"{f.message} ({note})"))
    if len(rows) <= d.val_size:
        return report
    report.train_ids, report.val_ids = split_ids([r.id for r in rows], d.val_size, d.split_seed)
    _check_split(report, cfg, nproc)
    if unseen_rows is not None:
        _check_unseen(report, cfg, rows)
    return report


def _check_rows(
    rows: Sequence[MetadataLine],
    wav_dir: Path,
    meta: Path,
    cfg: Any,
    mels_dir: Path | None,
    buckets: dict[str, Bucket],
    rates: dict[int, list[Path]],
    tick: Callable[[], None] | None,
    add: Callable[[Finding], None],
) -> dict[str, Clip]:
    """The header rules for every row's WAV (and mel); broken files go to ``buckets``."""
    a = cfg.audio

    def bucket(rule: str) -> Bucket:
        return buckets.setdefault(rule, Bucket())

    clips: dict[str, Clip] = {}
    missing: list[Path] = []
    for i, row in enumerate(rows):
        if tick is not None and i % TICK_EVERY == 0:
            tick()
        path = wav_dir / f"{row.id}.wav"
        try:
            h = read_wav_header(path)
        except FileNotFoundError:
            missing.append(path)
            continue
        except IsADirectoryError:
            bucket(RULE_UNREADABLE).add(path, "is a directory")
            continue
        except HeaderError as e:
            bucket(e.rule).add(path, str(e))
            continue
        except OSError as e:
            bucket(RULE_UNREADABLE).add(path, f"cannot read ({e.strerror or e})")
            continue
        if h.channels != 1:
            bucket(RULE_MONO).add(
                path, f"has {h.channels} channels; only mono audio is supported (downmix it)"
            )
            continue
        if h.sample_rate != a.sample_rate:
            rates.setdefault(h.sample_rate, []).append(path)
        n = round(h.frames * a.sample_rate / h.sample_rate)
        if n < a.hop_length:
            bucket(RULE_SHORTER_THAN_HOP).add(
                path, f"only {h.frames} samples long; shorter than one hop ({a.hop_length})"
            )
            continue
        mel_path, mel_frames = None, None
        if mels_dir is not None:
            mel_path = mels_dir / f"{row.id}.npy"
            mel_frames = _check_mel(mel_path, a.n_mels, n, a.hop_length, bucket(RULE_MELS))
        clips[row.id] = Clip(
            row.id, row.normalized_text, path, h.sample_rate, 1, h.frames, n, mel_path, mel_frames
        )
    if missing:
        add(
            Finding(
                LEVEL_ERROR,
                RULE_MISSING,
                f"{wav_dir}: {len(missing)} of {len(rows)} wav files listed in {meta.name} "
                f"are missing: {name_some(p.name for p in missing)}",
                tuple(str(p) for p in missing),
            )
        )
    return clips


def _unseen_rows(root: Path, d: Any, add: Callable[[Finding], None]) -> list[MetadataLine] | None:
    """The rows of ``data.unseen_metadata`` (None when unset or unreadable: a finding)."""
    if d.unseen_metadata is None:
        return None
    umeta = _resolve(root, d.unseen_metadata)
    try:
        rows = parse_metadata(umeta)
    except DataError as e:
        add(Finding(LEVEL_ERROR, RULE_UNSEEN, f"{e} (data.unseen_metadata)", (str(umeta),)))
        return None
    return rows


def mel_length_problem(mel_frames: int, num_samples: int, hop: int) -> str | None:
    """Why a precomputed mel does not fit its audio, or None (the one rule: frames x hop
    within one hop of the audio length, so centred and uncentred STFTs both pass)."""
    if abs(mel_frames * hop - num_samples) <= MEL_FRAME_TOLERANCE * hop:
        return None
    return (
        f"mel has {mel_frames} frames ({mel_frames} x hop {hop} = {mel_frames * hop} samples) "
        f"but its audio has {num_samples} samples; frames x hop must match the audio length "
        f"within one hop ({hop})"
    )


def _check_mel(path: Path, n_mels: int, num_samples: int, hop: int, bad: Bucket) -> int | None:
    try:
        h = read_npy_header(path)
    except FileNotFoundError:
        bad.add(path, "precomputed mel not found")
        return None
    except HeaderError as e:
        bad.add(path, str(e))
        return None
    except OSError as e:
        bad.add(path, f"cannot read ({e.strerror or e})")
        return None
    shape = h.shape[1:] if len(h.shape) == 3 and h.shape[0] == 1 else h.shape
    if len(shape) != 2 or shape[0] != n_mels:
        bad.add(path, f"mel shape {str(h.shape)[:60]} must be [n_mels={n_mels}, frames]")
        return None
    if h.truncated:
        bad.add(path, f"truncated: shape {str(h.shape)[:60]} needs more bytes than the file holds")
        return None
    problem = mel_length_problem(shape[1], num_samples, hop)
    if problem:
        bad.add(path, problem)
        return None
    return shape[1]


def _too_short(clips: Iterable[Clip], cfg: Any, what: str) -> Finding | None:
    """Validation clips too short for the largest STFT window, as one finding (or None)."""
    need = min_validation_samples(cfg)
    hop = cfg.audio.hop_length
    too_short = Bucket()
    for c in clips:
        frames = c.num_samples // hop
        if c.mel_frames is not None:
            frames = min(frames, c.mel_frames)
        if frames * hop < need:
            hint = "another data.split_seed, " if what == "validation" else ""
            too_short.add(
                c.wav_path,
                f"{what} clip of {frames * hop} samples (after trimming to whole hops) is "
                f"shorter than the largest STFT window ({need}: audio.n_fft and "
                f"loss.stft_resolutions); use longer clips, {hint}or smaller STFTs",
            )
    return too_short.finding(LEVEL_ERROR, RULE_VAL_TOO_SHORT, f"{what} clips are too short")


def _check_unseen(report: CorpusReport, cfg: Any, rows: Sequence[MetadataLine]) -> None:
    """The unseen set: long enough for every STFT, and no utterance of the corpus itself."""
    d = cfg.data
    umeta = _resolve(report.root, d.unseen_metadata)
    clips = [report.unseen[u] for u in report.unseen_ids]
    f = _too_short(clips, cfg, "unseen-set")
    if f is not None:
        report.findings.append(f)
    same_dir = os.path.realpath(umeta.parent / "wavs") == os.path.realpath(report.root / "wavs")
    listed = {r.id for r in rows}
    overlap = [c for c in clips if same_dir and c.id in listed]
    if overlap:
        report.findings.append(
            Finding(
                LEVEL_ERROR,
                RULE_UNSEEN,
                f"{umeta}: {len(overlap)} utterance(s) of the unseen set are also listed in "
                f"{d.metadata} (training or validation), so they are not unseen: "
                f"{name_some(c.id for c in overlap)} (data.unseen_metadata)",
                tuple(str(c.wav_path) for c in overlap),
            )
        )
    if not clips and not report.errors:
        report.findings.append(
            Finding(LEVEL_ERROR, RULE_UNSEEN, f"{umeta}: the unseen set is empty", (str(umeta),))
        )


def _check_split(report: CorpusReport, cfg: Any, nproc: int) -> None:
    a, add = cfg.audio, report.findings.append
    clips = report.clips
    short = [
        clips[u] for u in report.train_ids if u in clips and clips[u].num_samples < a.segment_size
    ]
    if short:
        add(
            Finding(
                LEVEL_WARNING,
                RULE_SHORT_CLIPS,
                f"{len(short)} of {len(report.train_ids)} training clips are shorter than "
                f"audio.segment_size ({a.segment_size} samples) and are zero-padded: "
                f"{name_some(f'{c.wav_path.name} ({c.num_samples})' for c in short)}",
                tuple(str(c.wav_path) for c in short),
            )
        )
    f = _too_short([clips[u] for u in report.val_ids if u in clips], cfg, "validation")
    if f is not None:
        add(f)
    per_step = cfg.train.batch_size * max(1, nproc)
    n_train = len(report.train_ids)
    if n_train < per_step:
        procs = f" x {nproc} processes" if nproc > 1 else ""
        add(
            Finding(
                LEVEL_ERROR,
                RULE_BATCH,
                f"{report.root}: {report.listed} clips minus data.val_size "
                f"{cfg.data.val_size} leaves {n_train} for training, fewer than one batch "
                f"(train.batch_size {cfg.train.batch_size}{procs}); add clips, or lower "
                f"data.val_size or train.batch_size",
                (),
            )
        )
