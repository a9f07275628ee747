"""The samples view's player: real player processes (a stand-in ``aplay`` script on PATH)
play an A/B pair one after the other, off the caller's thread; a failing player is said."""

from __future__ import annotations

import threading
from pathlib import Path

from nal_tui.core.samples.player import Playback, find_player


def _player(tmp_path: Path, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "aplay"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return bin_dir


def _play(tmp_path: Path, body: str, files: list[str]) -> str:
    bin_dir = _player(tmp_path, body)
    player, why = find_player(lambda n: str(bin_dir / n) if (bin_dir / n).exists() else None, {})
    assert player is not None and player.name == "aplay", why
    done: list[str] = []
    ev = threading.Event()
    pb = Playback(player, lambda msg: (done.append(msg), ev.set()))
    pb.play(files)  # returns at once: the player runs in its own thread
    assert ev.wait(60), "the playback never finished"
    return done[0]


def test_an_ab_pair_plays_in_order_with_the_found_player(tmp_path: Path) -> None:
    log = tmp_path / "played.txt"
    msg = _play(tmp_path, f'echo "$@" >> {log}', ["a_gen.wav", "b_gen.wav"])
    assert msg == "played with aplay"
    assert log.read_text().splitlines() == ["-q a_gen.wav", "-q b_gen.wav"]


def test_a_player_that_fails_is_said_and_the_pair_stops(tmp_path: Path) -> None:
    log = tmp_path / "played.txt"
    msg = _play(tmp_path, f'echo "$@" >> {log}; exit 3', ["a.wav", "b.wav"])
    assert msg == "aplay exited with status 3"
    assert log.read_text().splitlines() == ["-q a.wav"]
