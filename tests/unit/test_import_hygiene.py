"""The dashboard never imports torch (nor numpy or soundfile): each module in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

MODULES = [
    "nal_tui",
    "nal_tui.app",
    "nal_tui.cli",
    "nal_tui.control",
    "nal_tui.follow",
    "nal_tui.history",
    "nal_tui.messages",
    "nal_tui.preflight",
    "nal_tui.runs",
    "nal_tui.series",
    "nal_tui.state",
    "trainer.config",
    "trainer.corpus",
    "trainer.events",
    "trainer.rundir",
    "trainer.signals",
]
HEAVY = ("torch", "numpy", "soundfile")


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_no_heavy_package(module):
    code = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [], f"{module} pulls in {p.stdout.strip()}"


def test_preflight_without_models_stays_light(tmp_path):
    """Running the checks (not only importing them) must not load torch either."""
    code = (
        "import json, sys; from nal_tui.preflight import run_checks; "
        f"run_checks('config/demo.yaml', {str(tmp_path / 'run')!r}, build_models=False); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []
