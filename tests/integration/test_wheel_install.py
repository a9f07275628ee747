"""The package as a user installs it: a wheel built from this tree, installed into a fresh
venv, used from an empty directory (no repository around it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, read_events

pytestmark = pytest.mark.slow


def _tree_copy(dst: Path) -> Path:
    """The files git would ship (tracked and new, not ignored) copied to ``dst``: a build
    there cannot pick up stale files of an earlier build/ directory."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, names):
        src = ROOT / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree, not yet committed
        out = dst / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            out.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, out)
    return dst


def test_wheel_in_a_fresh_venv_works_from_an_empty_directory(tmp_path: Path) -> None:
    src = _tree_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = dist.glob("naudiolab-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # torch==2.13.0 comes from the machine's local index, like the README's set-up command.
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[train]"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "NAL_DATA_DIR")
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        XDG_DATA_HOME=str(home / "share"),
    )

    def run(*cmd: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(cmd), cwd=empty, env=env, capture_output=True, text=True, timeout=timeout
        )

    listed = run("nal-train", "configs")
    assert listed.returncode == 0, listed.stderr
    for name in ("demo", "hifigan_v1", "hifigan_v2", "hifigan_v3", "hifigan_48k"):
        assert f"\n{name} " in f"\n{listed.stdout}"
    shown = run("nal-train", "configs", "--show", "hifigan_v1")
    assert shown.returncode == 0 and "name: hifigan_v1" in shown.stdout
    (empty / "mine.yaml").write_text(shown.stdout)
    summary = run("nal-train", "summary", "--config", "mine.yaml")
    assert summary.returncode == 0 and '"generator": 13936130' in summary.stdout

    pre = run("nal-tui", "--preflight")  # no arguments but the check: the demo, found
    assert pre.returncode == 0, pre.stdout + pre.stderr
    assert "config file not found" not in pre.stdout

    train = run("nal-train", "train", "--config", "demo", "--target-step", "3", timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    ends = [e for e in read_events(empty / "logs" / "demo") if e["event"] == "run_end"]
    assert ends and ends[-1]["status"] == "completed" and ends[-1]["step"] == 3
    # The demo corpus went to the per-user data directory, not into the empty directory.
    assert (home / "share" / "naudiolab" / "demo_corpus" / "metadata.csv").is_file()
    assert sorted(p.name for p in empty.iterdir()) == ["logs", "mine.yaml"]
    assert run("nal-tui", "status").returncode == 0
