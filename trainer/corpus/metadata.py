"""``metadata.csv`` (LJSpeech format: ``id|text|normalized_text``) and the seeded
train/validation split by hashed id."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.corpus.report import DataError


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
