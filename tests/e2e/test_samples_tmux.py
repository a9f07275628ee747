"""End to end in tmux: ``v`` on a run the trainer made shows its samples' spectrograms in
colour, 24-bit where the terminal says so (COLORTERM=truecolor) and from the 256-colour
palette where it does not; the arrow keys walk back to the earlier validation
(``nal-tui compare`` in tmux: test_compare_tmux.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_tmux import ROOT, SESSION, keys, nal_tui, tmux, wait_for, wait_text

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]

HALF = "▀"


@pytest.fixture
def tmux_server():
    yield
    keys("q")
    tmux("kill-server")


def open_samples(run: Path, env: str, size=("120", "40")) -> str:
    tmux("new-session", "-d", "-s", SESSION, "-x", size[0], "-y", size[1],
         "bash --norc --noprofile")  # fmt: skip
    wait_for(lambda s: "$" in s or "#" in s, 60, "the shell prompt")
    keys(f"cd {ROOT} && {env} exec {nal_tui()} --run-dir {run}", "Enter")
    wait_text("step 4/4", 120)
    keys("v")
    wait_text(HALF * 20, 60)
    return wait_for(lambda s: "_gen.wav" in s and "Esc back" in s, 60, "the samples view")


@pytest.mark.parametrize(
    ("env", "colour"),
    [("TERM=xterm-256color COLORTERM=truecolor", "38;2;"),
     ("TERM=xterm-256color COLORTERM=", "38;5;")],
    ids=["truecolor", "256"],
)  # fmt: skip
def test_v_in_a_real_terminal(sampled_run: Path, tmp_path: Path, tmux_server, env, colour):
    run = tmp_path / "logs" / "demo"
    shutil.copytree(sampled_run, run)
    text = open_samples(run, env)
    assert "samples · step 4 (2/2)" in text and "▲ generated" in text and "▼ ground truth" in text
    assert re.search(r"samples/step_00000004/\S+_gen\.wav", text)
    coloured = tmux("capture-pane", "-p", "-e", "-t", SESSION)
    # Both the upper pixel (foreground) and the lower one (background) of a half block.
    assert colour in coloured and colour.replace("38", "48") in coloured
    if colour == "38;5;":
        assert "38;2;" not in coloured  # nothing needs a truecolour terminal
    keys("Left")
    wait_text("step 2 (1/2)", 30)
    keys("d")
    wait_text("▼ generated − truth (dB", 30)
    keys("Escape")
    wait_for(lambda s: "samples ·" not in s and "step 4/4" in s, 30, "the dashboard again")
