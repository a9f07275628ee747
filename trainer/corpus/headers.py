"""WAV and ``.npy`` header readers with the *real* data length (the bytes present, not the
header's claim); stdlib only. A header that breaks a corpus rule raises HeaderError naming
the rule."""

from __future__ import annotations

import ast
import os
import struct
from dataclasses import dataclass

from trainer.corpus.report import (
    RULE_ENCODING,
    RULE_HEADER_ONLY,
    RULE_MELS,
    RULE_NOT_WAV,
    RULE_TRUNCATED,
)

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


class HeaderError(ValueError):
    """A file header that breaks a corpus rule; ``rule`` names which."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


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
