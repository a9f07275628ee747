"""Leaving a current ``events.idx`` behind: readers that found it missing or stale build one.

A reader (the dashboard, the watcher) that opens a log without a usable index builds a
new one beside it (``trainer.events.indexwrite.refresh_index``: a temp file, the present
index's sound blocks kept) and uses it for its own load; ``install_index`` then swaps it
in atomically unless a trainer holds the log. Two ways to build, same result:
``build_here`` in the calling thread, ``build_in_child`` in a child process so the
caller's process (the dashboard's UI thread) keeps its interpreter to itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import trainer.events
from trainer.events.indexwrite import refresh_index

log = logging.getLogger(__name__)

# (log path, fresh: ignore the present index's blocks) -> the built temp index, or None.
IndexBuild = Callable[[Path, bool], "Path | None"]
CHILD_POLL_S = 0.05


def build_here(path: Path, fresh: bool) -> Path | None:
    """``refresh_index`` in this thread; None (logged) when the directory takes no file."""
    try:
        return refresh_index(path, fresh=fresh)
    except OSError as e:
        log.info("no event index built for %s: %s", path, e.strerror or e)
        return None


def build_in_child(stopped: Callable[[], bool] = lambda: False) -> IndexBuild:
    """A builder running ``python -m trainer.events.indexwrite`` (killed when ``stopped``)."""

    def build(path: Path, fresh: bool) -> Path | None:
        # The child finds the trainer package where this process found it.
        root = str(Path(trainer.events.__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "trainer.events.indexwrite", str(Path(path).absolute())]
        try:
            proc = subprocess.Popen(
                [*cmd, *(["--fresh"] if fresh else [])],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, close_fds=True,
            )  # fmt: skip
        except OSError as e:
            log.info("no event index built for %s: %s", path, e.strerror or e)
            return None
        while True:
            try:
                out, err = proc.communicate(timeout=CHILD_POLL_S)
                break
            except subprocess.TimeoutExpired:
                if stopped():  # our own child, started just above; it removes its temp file
                    proc.terminate()
                    try:
                        proc.communicate(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.communicate()
                    return None
        lines = out.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode != 0 or not lines:
            why = err.decode("utf-8", "replace").strip().splitlines()
            log.info("no event index built for %s: %s", path, why[-1] if why else proc.returncode)
            return None
        return Path(lines[-1])

    return build
