"""End to end in tmux: ``nal-tui compare`` on two runs the trainer made (one with another
learning rate in its config) in a real terminal: the legend names each run's directory,
the hyperparameter diff shows the differing key, ``t`` toggles the x axis between step and
wall-clock time, ``↓`` reaches the learning rate, ``v`` opens the A/B samples across the
runs, ``q`` quits with status 0."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.test_samples_tmux import tmux_server  # noqa: F401 - the fixture
from tests.e2e.test_tmux import ROOT, SESSION, keys, nal_tui, tmux, wait_for, wait_text

pytestmark = [
    pytest.mark.slow,  # trains a tiny run first (once per session)
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


def _two_runs(sampled_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "logs" / "base", tmp_path / "logs" / "lowlr"
    shutil.copytree(sampled_run, a)
    shutil.copytree(sampled_run, b)
    cfg = b / "config.yaml"
    cfg.write_text(cfg.read_text().replace("lr_g: 0.0002", "lr_g: 0.0001"))
    return a, b


def _rows(text: str, key: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip().startswith(key)]


def test_compare_in_a_real_terminal(sampled_run: Path, tmp_path: Path, tmux_server) -> None:  # noqa: F811
    a, b = _two_runs(sampled_run, tmp_path)
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40", "bash --norc --noprofile")
    wait_for(lambda s: "$" in s or "#" in s, 60, "the shell prompt")
    # Not exec'd: the shell says how nal-tui exited once q quits it.
    keys(f"cd {ROOT} && {nal_tui()} compare {a} {b}; echo nal-tui-exit=$?", "Enter")
    text = wait_text("compare · 2 runs · validation mel L1 distance", 120)
    text = wait_for(lambda s: "optim.lr_g" in s, 60, "the config diff")
    # The legend names each run's directory; the diff holds each run's value of the key.
    assert "━ base" in text and "━ lowlr" in text and "best mel_l1" in text
    diff = _rows(text, "optim.lr_g")
    assert len(diff) == 1 and diff[0].split()[1:] == ["0.0002", "0.0001"], diff
    assert "· against step" in text and "t x axis: time" in text
    keys("t")
    text = wait_text("· against wall-clock time", 30)
    assert "time since start" in text and "t x axis: step" in text
    keys("t")
    text = wait_for(lambda s: "· against step" in s and "time since start" not in s, 30,
                    "the step axis again")  # fmt: skip
    # The learning rate G: the series after the validation metric and the five losses.
    keys(*["Down"] * 6)
    text = wait_for(lambda s: "optimiser lr G (7/10)" in s and "e-04" in s, 60,
                    "the learning rate G of both runs")  # fmt: skip
    labels = [ln.split()[0] for ln in text.splitlines() if ln.strip().endswith("e-04")]
    assert labels and all(1e-4 < float(x) < 3e-4 for x in labels), labels  # around 2e-4
    keys("v")
    text = wait_for(lambda s: "▼ B: lowlr · step 4" in s and "_gen.wav" in s, 60, "A/B across runs")
    assert "samples · base · step 4" in text
    keys("Escape")
    wait_text("optimiser lr G (7/10)", 30)
    keys("q")
    wait_text("nal-tui-exit=0", 30)
