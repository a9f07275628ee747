"""Corpus rules shared by the trainer and preflight: one verdict on every file, torch-free.

Stdlib only (no numpy, torch or soundfile): ``nal_tui``'s preflight imports this module. WAV
and ``.npy`` headers are parsed here with the *real* data length (the bytes present, not the
header's claim). :func:`check_corpus` applies every rule and returns a :class:`CorpusReport`;
the trainer refuses a corpus with errors (exit 2) and reports the warnings.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEVEL_ERROR = "error"
LEVEL_WARNING = "warning"

# Rule names: a finding's ``rule``, also shown in the trainer's one-line data error.
RULE_CORPUS_DIR = "corpus_dir"
RULE_METADATA = "metadata"
RULE_VAL_SIZE = "val_size"
RULE_MISSING = "missing_files"
RULE_UNREADABLE = "unreadable"
RULE_NOT_WAV = "not_wav"
RULE_HEADER_ONLY = "header_only"
RULE_TRUNCATED = "truncated_wav"
RULE_ENCODING = "wav_encoding"
RULE_MONO = "mono"
RULE_SAMPLE_RATE = "sample_rate"
RULE_SHORTER_THAN_HOP = "shorter_than_hop"
RULE_SHORT_CLIPS = "short_clips"
RULE_VAL_TOO_SHORT = "val_too_short"
RULE_BATCH = "batch"
RULE_MELS = "mels"
RULE_UNSEEN = "unseen_set"  # data.unseen_metadata: unreadable, or overlapping training

# Precomputed mels: frames x hop must lie within one hop of the audio length (a centred STFT
# has one frame more than len // hop, an uncentred one len // hop); see mel_length_problem.
MEL_FRAME_TOLERANCE = 1
NAMES_SHOWN = 5  # file names quoted in a message before "... and N more"
TICK_EVERY = 256  # files between calls of check_corpus's ``tick``
NPY_HEADER_MAX = 1 << 16  # a .npy header is a few hundred bytes; refuse absurd ones

# Encodings soundfile decodes and the trainer accepts: format tag -> allowed bit depths.
WAV_FORMAT_PCM = 1
WAV_FORMAT_FLOAT = 3
WAV_FORMAT_ALAW = 6
WAV_FORMAT_MULAW = 7
WAV_FORMAT_EXTENSIBLE = 0xFFFE
WAV_ENCODINGS: dict[int, tuple[str, tuple[int, ...]]] = {
    WAV_FORMAT_PCM: ("PCM", (8, 16, 24, 32)),
    WAV_FORMAT_FLOAT: ("float", (32, 64)),
    WAV_FORMAT_ALAW: ("A-law", (8,)),
    WAV_FORMAT_MULAW: ("mu-law", (8,)),
}
_UNKNOWN_SIZE = 0xFFFFFFFF

# Magic numbers of other audio containers, so a FLAC named .wav is named as FLAC.
_MAGIC = (
    (b"fLaC", "FLAC"),
    (b"OggS", "Ogg (Vorbis/Opus/FLAC)"),
    (b"ID3", "MP3"),
    (b"FORM", "AIFF"),
    (b".snd", "Sun/NeXT AU"),
    (b"caff", "Core Audio (CAF)"),
    (b"RIFX", "big-endian RIFF (RIFX)"),
    (b"\x93NUMPY", ".npy array"),
)


class DataError(ValueError):
    """A corpus that cannot be used; the message names the file (and line) at fault."""


class HeaderError(ValueError):
    """A file header that breaks a corpus rule; ``rule`` names which."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


# ------------------------------------------------------------------------------ WAV


@dataclass(frozen=True)
class WavHeader:
    """A RIFF/WAVE file's format and its audio data as present on disk."""

    format_tag: int  # WAVE_FORMAT_EXTENSIBLE resolved to its SubFormat's tag
    channels: int
    sample_rate: int
    bits: int
    block_align: int
    data_offset: int
    declared_bytes: int  # the data chunk's size field
    present_bytes: int  # bytes of that chunk actually in the file

    @property
    def truncated(self) -> bool:
        return self.present_bytes < self.declared_bytes

    @property
    def frames(self) -> int:
        """Whole frames present (never the header's claim when the file is shorter)."""
        return min(self.declared_bytes, self.present_bytes) // self.block_align

    @property
    def declared_frames(self) -> int:
        return self.declared_bytes // self.block_align

    @property
    def encoding(self) -> str:
        name = WAV_ENCODINGS.get(self.format_tag, (f"format {self.format_tag:#x}",))[0]
        return f"{self.bits}-bit {name}"


def sniff_format(head: bytes) -> str | None:
    """Name of a known non-WAV audio container from a file's first bytes, else None."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3/AAC (MPEG frames)"
    return None


def read_wav_header(path: str | os.PathLike[str]) -> WavHeader:
    """Parse a RIFF/WAVE (or RF64) header; raises HeaderError (rule + reason) or OSError.

    Handles WAVE_FORMAT_EXTENSIBLE, odd-sized chunks (padded to even), chunks after the
    data, and files shorter than their header claims.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
            if size == 0:
                raise HeaderError(RULE_NOT_WAV, "empty file (0 bytes), not a RIFF/WAVE file")
            kind = sniff_format(head)
            what = f"a {kind} file" if kind else "not a RIFF/WAVE file"
            raise HeaderError(
                RULE_NOT_WAV,
                f"is {what}, not RIFF/WAVE (only WAV is read: convert it, e.g. "
                f"'sox in.flac out.wav')"
                if kind
                else "is not a RIFF/WAVE file (no 'RIFF....WAVE' header)",
            )
        rf64 = head[:4] != b"RIFF"
        fmt: tuple[int, int, int, int, int] | None = None
        ds64_data: int | None = None
        while True:
            ch = f.read(8)
            if len(ch) < 8:
                break
            cid, csize = ch[:4], struct.unpack("<I", ch[4:])[0]
            if cid == b"fmt ":
                body = f.read(csize)
                if len(body) < 16 or len(body) < csize:
                    raise HeaderError(RULE_HEADER_ONLY, "the fmt chunk is cut short")
                tag, nch, sr, _rate, align, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == WAV_FORMAT_EXTENSIBLE:
                    if len(body) < 26:
                        raise HeaderError(
                            RULE_ENCODING, "WAVE_FORMAT_EXTENSIBLE without a SubFormat"
                        )
                    # The real tag is the first two bytes of the SubFormat GUID.
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, nch, sr, align, bits)
                if csize % 2:
                    f.seek(1, os.SEEK_CUR)
            elif cid == b"ds64" and rf64:
                body = f.read(csize)
                if len(body) >= 16:
                    ds64_data = struct.unpack("<Q", body[8:16])[0]
                if csize % 2:
                    f.seek(1, os.SEEK_CUR)
            elif cid == b"data":
                if fmt is None:
                    raise HeaderError(RULE_ENCODING, "the data chunk comes before the fmt chunk")
                offset = f.tell()
                present = max(0, size - offset)
                declared = csize
                if csize == _UNKNOWN_SIZE:
                    # RF64 keeps the size in ds64; a streaming writer leaves it unknown.
                    declared = ds64_data if (rf64 and ds64_data is not None) else present
                return _wav_header(fmt, offset, declared, present)
            else:
                f.seek(csize + (csize % 2), os.SEEK_CUR)
                if f.tell() > size:
                    break
    if fmt is None:
        raise HeaderError(RULE_HEADER_ONLY, "has no fmt chunk (header only or cut short)")
    raise HeaderError(RULE_HEADER_ONLY, "has no data chunk: a header without audio")


def _wav_header(
    fmt: tuple[int, int, int, int, int], offset: int, declared: int, present: int
) -> WavHeader:
    tag, nch, sr, align, bits = fmt
    enc = WAV_ENCODINGS.get(tag)
    if enc is None or bits not in enc[1]:
        what = f"{bits}-bit {enc[0]}" if enc else f"format tag {tag:#x}"
        raise HeaderError(
            RULE_ENCODING,
            f"unsupported WAV encoding ({what}); use PCM 8/16/24/32-bit or float 32/64-bit",
        )
    if nch < 1 or sr < 1 or align != nch * bits // 8:
        raise HeaderError(
            RULE_ENCODING,
            f"inconsistent fmt chunk ({nch} channel(s), {sr} Hz, {bits}-bit, block align {align})",
        )
    h = WavHeader(tag, nch, sr, bits, align, offset, declared, present)
    if declared == 0 or h.frames == 0:
        raise HeaderError(
            RULE_HEADER_ONLY,
            "has a header but no audio data"
            + (f" (the data chunk claims {declared} bytes, none present)" if declared else ""),
        )
    if h.truncated:
        raise HeaderError(
            RULE_TRUNCATED,
            f"is truncated: its header claims {declared} bytes of audio "
            f"({h.declared_frames} frames) but the file holds {present} "
            f"({h.frames} frames)",
        )
    return h


# ------------------------------------------------------------------------------ .npy


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    descr: str
    fortran_order: bool
    data_offset: int
    itemsize: int
    present_bytes: int

    @property
    def truncated(self) -> bool:
        n = self.itemsize
        for d in self.shape:
            n *= d
        return self.present_bytes < n


def read_npy_header(path: str | os.PathLike[str]) -> NpyHeader:
    """Parse a .npy header (format 1.0-3.0); raises HeaderError (rule ``mels``) or OSError."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        magic = f.read(8)
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
            raise HeaderError(RULE_MELS, "not a .npy file")
        major = magic[6]
        if major not in (1, 2, 3):
            raise HeaderError(RULE_MELS, f".npy format version {major} is not supported")
        width = 2 if major == 1 else 4
        raw = f.read(width)
        if len(raw) < width:
            raise HeaderError(RULE_MELS, "garbled .npy header")
        hlen = struct.unpack("<H" if major == 1 else "<I", raw)[0]
        if hlen > NPY_HEADER_MAX:
            raise HeaderError(RULE_MELS, f".npy header of {hlen} bytes is not plausible")
        text = f.read(hlen)
    offset = 8 + width + hlen
    try:
        d = ast.literal_eval(text.decode("latin1"))
        shape = tuple(int(x) for x in d["shape"])
        descr = d["descr"]
        fortran = bool(d["fortran_order"])
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        raise HeaderError(RULE_MELS, "garbled .npy header") from None
    code = descr.lstrip("<>|=") if isinstance(descr, str) else ""
    if len(code) < 2 or code[0] not in "fiu" or not code[1:].isdigit():
        raise HeaderError(RULE_MELS, f"dtype {str(descr)[:40]!r} is not a numeric array")
    itemsize = int(code[1:])
    if any(s < 0 for s in shape):
        raise HeaderError(RULE_MELS, f"negative dimension in shape {str(shape)[:60]}")
    return NpyHeader(shape, descr, fortran, offset, itemsize, max(0, size - offset))


# ------------------------------------------------------------------------------ metadata


@dataclass(frozen=True)
class MetadataLine:
    """One ``metadata.csv`` row."""

    id: str
    text: str
    normalized_text: str
    line: int


def parse_metadata(path: str | os.PathLike[str]) -> list[MetadataLine]:
    """Parse ``id|text|normalized_text`` lines (2 columns tolerated, blank lines skipped)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: metadata file not found (data.metadata)") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read metadata: {e.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{p}:{line}: not valid UTF-8") from None
    rows: list[MetadataLine] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.split("|")
        if len(cols) not in (2, 3):
            raise DataError(
                f"{p}:{n}: expected 'id|text|normalized_text' (2 or 3 fields "
                f"separated by '|'), got {len(cols)} field(s)"
            )
        uid = cols[0].strip()
        if not uid:
            raise DataError(f"{p}:{n}: empty utterance id")
        if "/" in uid or "\\" in uid or "\0" in uid or uid in (".", ".."):
            raise DataError(f"{p}:{n}: utterance id {uid[:80]!r} must be a plain file stem")
        if uid in seen:
            raise DataError(
                f"{p}:{n}: duplicate utterance id {uid[:80]!r} (first on line {seen[uid]})"
            )
        seen[uid] = n
        norm = cols[2] if len(cols) == 3 else cols[1]
        rows.append(MetadataLine(uid, cols[1], norm, n))
    if not rows:
        raise DataError(f"{p}: no utterances listed")
    return rows


def _split_key(seed: int, uid: str) -> bytes:
    return hashlib.blake2b(f"{seed}\0{uid}".encode(), digest_size=16).digest()


def split_ids(ids: Sequence[str], val_size: int, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split by hashed id: the same ids go to validation whatever the file order."""
    val = set(sorted(ids, key=lambda u: _split_key(seed, u))[:val_size])
    return [u for u in ids if u not in val], sorted(val)


# ------------------------------------------------------------------------------ report


@dataclass(frozen=True)
class Finding:
    """One broken rule: level ``error`` (refused) or ``warning`` (reported), the files."""

    level: str
    rule: str
    message: str
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clip:
    """A listed utterance whose WAV passed the header rules."""

    id: str
    text: str
    wav_path: Path
    file_sr: int
    channels: int
    frames: int  # frames present in the file
    num_samples: int  # at the configured rate
    mel_path: Path | None = None
    mel_frames: int | None = None


@dataclass
class CorpusReport:
    """What :func:`check_corpus` found: findings, the clips, and the train/val split."""

    root: Path
    findings: list[Finding] = field(default_factory=list)
    clips: dict[str, Clip] = field(default_factory=dict)
    listed: int = 0
    train_ids: list[str] = field(default_factory=list)
    val_ids: list[str] = field(default_factory=list)
    # The held-out unseen set (data.unseen_metadata): its clips by id, and its ids in order.
    unseen: dict[str, Clip] = field(default_factory=dict)
    unseen_ids: list[str] = field(default_factory=list)
    generated_on_start: bool = False  # demo corpus not there yet; the trainer makes it

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == LEVEL_ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == LEVEL_WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def finding(self, rule: str) -> Finding | None:
        return next((f for f in self.findings if f.rule == rule), None)

    def error_line(self) -> str:
        """The first error as one line (rule and file named), with a count of the others."""
        errs = self.errors
        if not errs:
            return ""
        first = errs[0]
        more = errs[1:]
        tail = ""
        if more:
            tail = f" (and {len(more)} more problem(s): {', '.join(f.rule for f in more)})"
        return f"[{first.rule}] {first.message}{tail}"


def name_some(names: Iterable[str], shown: int = NAMES_SHOWN) -> str:
    """``a, b, c ... and N more``."""
    items = list(names)
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" ... and {more} more" if more > 0 else "")


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


class _Bucket:
    """Files breaking one rule, with a detail each, folded into one Finding."""

    def __init__(self) -> None:
        self.items: list[tuple[Path, str]] = []

    def add(self, path: Path, detail: str) -> None:
        self.items.append((path, detail))

    def finding(self, level: str, rule: str, what: str) -> Finding | None:
        if not self.items:
            return None
        first, detail = self.items[0]
        msg = f"{first}: {detail}"
        if len(self.items) > 1:
            others = name_some(p.name for p, _ in self.items[1:])
            msg = f"{len(self.items)} {what}; first {msg}; also {others}"
        return Finding(level, rule, msg, tuple(str(p) for p, _ in self.items))


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

    buckets: dict[str, _Bucket] = {}
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
        f = buckets.get(rule, _Bucket()).finding(LEVEL_ERROR, rule, what)
        if f is not None:
            add(f)
    for sr, paths in sorted(rates.items()):
        rate = _Bucket()
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
    buckets: dict[str, _Bucket],
    rates: dict[int, list[Path]],
    tick: Callable[[], None] | None,
    add: Callable[[Finding], None],
) -> dict[str, Clip]:
    """The header rules for every row's WAV (and mel); broken files go to ``buckets``."""
    a = cfg.audio

    def bucket(rule: str) -> _Bucket:
        return buckets.setdefault(rule, _Bucket())

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
    if abs(mel_frames * hop - num_samples) <= hop:
        return None
    return (
        f"mel has {mel_frames} frames ({mel_frames} x hop {hop} = {mel_frames * hop} samples) "
        f"but its audio has {num_samples} samples; frames x hop must match the audio length "
        f"within one hop ({hop})"
    )


def _check_mel(path: Path, n_mels: int, num_samples: int, hop: int, bad: _Bucket) -> int | None:
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
    too_short = _Bucket()
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
