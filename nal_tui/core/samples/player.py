"""Playing a sample with a local player, off the UI thread, one playback at a time.

The first of ``aplay``, ``paplay``, ``afplay``, ``ffplay``, ``play`` found on PATH plays the
files one after the other (an A/B pair: A, then B). Over SSH without forwarded audio
(``SSH_CONNECTION`` set, ``PULSE_SERVER`` not) nothing would be heard, so it says so
instead. Only the player processes started here are ever stopped (through their own
``Popen`` handle), never another process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

PLAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aplay", ("-q",)),
    ("paplay", ()),
    ("afplay", ()),
    ("ffplay", ("-nodisp", "-autoexit", "-loglevel", "quiet")),
    ("play", ("-q",)),
)
PLAYER_NAMES = tuple(name for name, _ in PLAYERS)


@dataclass(frozen=True)
class Player:
    name: str
    argv: tuple[str, ...]  # the command before the file name


def find_player(
    which: Callable[[str], str | None] = shutil.which, env: Mapping[str, str] | None = None
) -> tuple[Player | None, str]:
    """(the player to use, or None and why not: a one-line reason for the screen)."""
    env = os.environ if env is None else env
    if (env.get("SSH_CONNECTION") or env.get("SSH_TTY")) and not env.get("PULSE_SERVER"):
        return None, "remote session (SSH) without forwarded audio: nothing to play on"
    for name, args in PLAYERS:
        path = which(name)
        if path:
            return Player(name, (path, *args)), ""
    return None, f"no audio player on PATH ({', '.join(PLAYER_NAMES)})"


class Playback:
    """Plays files in a background thread; ``play`` again stops the playback in progress."""

    def __init__(self, player: Player, done: Callable[[str], None] = lambda msg: None) -> None:
        self.player = player
        self.done = done  # called from the thread with a one-line result
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._generation = 0

    def play(self, paths: Sequence[str]) -> None:
        with self._lock:
            self._generation += 1
            gen = self._generation
            self._stop_locked()
        threading.Thread(target=self._run, args=(gen, list(paths)), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            self._generation += 1
            self._stop_locked()

    def _stop_locked(self) -> None:
        p = self._proc
        if p is not None and p.poll() is None:
            p.terminate()  # our own child, by its handle (not reaped yet, so not reused)
        self._proc = None

    def _run(self, gen: int, paths: list[str]) -> None:
        for path in paths:
            with self._lock:
                if gen != self._generation:
                    return
                try:
                    proc = subprocess.Popen(
                        [*self.player.argv, path],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                except OSError as e:
                    self.done(f"{self.player.name} could not start: {e.strerror or e}")
                    return
                self._proc = proc
            code = proc.wait()
            if code != 0 and gen == self._generation:
                self.done(f"{self.player.name} exited with status {code}")
                return
        if gen == self._generation:
            self.done(f"played with {self.player.name}")
