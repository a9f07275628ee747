"""Corpus rules shared by the trainer and preflight: one verdict on every file, torch-free.

Stdlib only (no numpy, torch or soundfile): ``nal_tui``'s preflight may import this package.
WAV and ``.npy`` headers are parsed with the *real* data length (the bytes present, not the
header's claim). :func:`check_corpus` applies every rule and returns a :class:`CorpusReport`;
the trainer refuses a corpus with errors (exit 2) and reports the warnings.

The parts: :mod:`.report` (rule names, findings, the report), :mod:`.headers` (WAV and .npy
headers), :mod:`.metadata` (metadata.csv and the split), :mod:`.check` (the rules applied).
Every name is importable from ``trainer.corpus`` itself.
"""

from __future__ import annotations

from trainer.corpus.check import (
    MEL_FRAME_TOLERANCE,
    TICK_EVERY,
    check_corpus,
    mel_length_problem,
    min_validation_samples,
)
from trainer.corpus.headers import (
    NPY_HEADER_MAX,
    WAV_ENCODINGS,
    WAV_FORMAT_ALAW,
    WAV_FORMAT_EXTENSIBLE,
    WAV_FORMAT_FLOAT,
    WAV_FORMAT_MULAW,
    WAV_FORMAT_PCM,
    HeaderError,
    NpyHeader,
    WavHeader,
    read_npy_header,
    read_wav_header,
    sniff_format,
)
from trainer.corpus.metadata import MetadataLine, parse_metadata, split_ids
from trainer.corpus.report import (
    LEVEL_ERROR,
    LEVEL_WARNING,
    NAMES_SHOWN,
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
    Clip,
    CorpusReport,
    DataError,
    Finding,
    name_some,
)

__all__ = [
    "LEVEL_ERROR",
    "LEVEL_WARNING",
    "MEL_FRAME_TOLERANCE",
    "NAMES_SHOWN",
    "NPY_HEADER_MAX",
    "RULE_BATCH",
    "RULE_CORPUS_DIR",
    "RULE_ENCODING",
    "RULE_HEADER_ONLY",
    "RULE_MELS",
    "RULE_METADATA",
    "RULE_MISSING",
    "RULE_MONO",
    "RULE_NOT_WAV",
    "RULE_SAMPLE_RATE",
    "RULE_SHORTER_THAN_HOP",
    "RULE_SHORT_CLIPS",
    "RULE_TRUNCATED",
    "RULE_UNREADABLE",
    "RULE_UNSEEN",
    "RULE_VAL_SIZE",
    "RULE_VAL_TOO_SHORT",
    "TICK_EVERY",
    "WAV_ENCODINGS",
    "WAV_FORMAT_ALAW",
    "WAV_FORMAT_EXTENSIBLE",
    "WAV_FORMAT_FLOAT",
    "WAV_FORMAT_MULAW",
    "WAV_FORMAT_PCM",
    "Clip",
    "CorpusReport",
    "DataError",
    "Finding",
    "HeaderError",
    "MetadataLine",
    "NpyHeader",
    "WavHeader",
    "check_corpus",
    "mel_length_problem",
    "min_validation_samples",
    "name_some",
    "parse_metadata",
    "read_npy_header",
    "read_wav_header",
    "sniff_format",
    "split_ids",
]
