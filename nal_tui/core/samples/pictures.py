"""Reading mel pictures for the screen: decoded once, re-read when the file changes, and a
file that cannot be used is a one-line reason (cleaned for the terminal), never an error."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

from nal_tui.core.text import clean
from trainer.rundir.melpic import MelPicture, PictureError, read_picture

KEEP = 32  # pictures kept decoded (a 128 x 512 one is 64 kB)


class PictureCache:
    def __init__(self) -> None:
        self._cache: OrderedDict[Path, tuple[tuple[int, int], MelPicture | str]] = OrderedDict()

    def get(self, path: Path, label: str | None = None) -> MelPicture | str:
        """The picture at ``path``, or why it cannot be shown (naming it ``label``, e.g. its
        run-dir-relative path, default the path)."""
        name = str(path) if label is None else label
        try:
            st = os.stat(path)
            key = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            wav = path.with_suffix(".wav")
            if wav.exists():
                return f"no mel picture beside {clean(wav.name, 80)} (written before pictures?)"
            return f"{clean(name, 200)}: no such file"
        except OSError as e:
            return f"{clean(name, 200)}: cannot read: {clean(e.strerror or e, 80)}"
        hit = self._cache.get(path)
        if hit is not None and hit[0] == key:
            self._cache.move_to_end(path)
            return hit[1]
        try:
            got: MelPicture | str = read_picture(path)
        except PictureError as e:
            got = clean(str(e).replace(str(path), name, 1), 300)
        self._cache[path] = (key, got)
        while len(self._cache) > KEEP:
            self._cache.popitem(last=False)
        return got
