"""The corpus rules' vocabulary and verdict: rule names and levels, one Finding per broken
rule, the clips that passed, and the CorpusReport that :func:`check_corpus` returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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

NAMES_SHOWN = 5  # file names quoted in a message before "... and N more"


class DataError(ValueError):
    """A corpus that cannot be used; the message names the file (and line) at fault."""


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


class Bucket:
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
