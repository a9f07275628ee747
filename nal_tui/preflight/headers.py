"""WAV and .npy headers read without numpy or soundfile."""

from __future__ import annotations

import ast
import os
import struct
from dataclasses import dataclass

# ------------------------------------------------------------------ file headers


@dataclass(frozen=True)
class WavHeader:
    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    frames: int | None  # None when there is no data chunk


def read_wav_header(path: str | os.PathLike[str]) -> WavHeader:
    """Parse a RIFF/WAVE header (PCM, float, WAVE_FORMAT_EXTENSIBLE); ValueError says why."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise ValueError("not a RIFF/WAVE file")
        fmt: tuple[int, int, int, int, int] | None = None
        frames = None
        while True:
            ch = f.read(8)
            if len(ch) < 8:
                break
            cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
            if cid == b"fmt ":
                body = f.read(size)
                if len(body) < 16:
                    raise ValueError("fmt chunk is too short")
                tag, nch, sr, _rate, align, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == 0xFFFE and len(body) >= 26:
                    # WAVE_FORMAT_EXTENSIBLE: the real tag is the SubFormat GUID's first 2 bytes.
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, nch, sr, align, bits)
                if size % 2:
                    f.seek(1, os.SEEK_CUR)
            elif cid == b"data":
                if fmt is None:
                    raise ValueError("data chunk before the fmt chunk")
                # RF64 stores 0xFFFFFFFF here (real size in ds64); length unknown then.
                frames = None if size == 0xFFFFFFFF else size // max(1, fmt[3])
                break
            else:
                f.seek(size + (size % 2), os.SEEK_CUR)
    if fmt is None:
        raise ValueError("no fmt chunk")
    tag, nch, sr, _align, bits = fmt
    return WavHeader(tag, nch, sr, bits, frames)


def read_npy_shape(path: str | os.PathLike[str]) -> tuple[int, ...]:
    """The array shape from a .npy header (format 1.0-3.0); ValueError says why."""
    with open(path, "rb") as f:
        magic = f.read(8)
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
            raise ValueError("not a .npy file")
        major = magic[6]
        n = f.read(2 if major == 1 else 4)
        hlen = struct.unpack("<H" if major == 1 else "<I", n)[0]
        header = f.read(hlen).decode("latin1")
    try:
        d = ast.literal_eval(header)
        shape = tuple(int(x) for x in d["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise ValueError("garbled .npy header") from None
    return shape
