"""Layer rules: nal_tui.core stays headless, nal_tui never imports torch or numpy.

Two checks, as harlequin does: import-linter's contracts (pyproject.toml) over the whole
import graph, and each module imported in a fresh process with the heavy packages
looked for in sys.modules afterwards.
"""

from __future__ import annotations

import json
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nal_tui

ROOT = Path(__file__).resolve().parents[2]
CORE = sorted(
    m.name
    for m in pkgutil.walk_packages(nal_tui.__path__, "nal_tui.")
    if m.name.startswith("nal_tui.core")
)
OTHERS = ["nal_tui", "nal_tui.cli", "nal_tui.preflight", "nal_tui.ui.app", "trainer.events",
          "trainer.events.parse", "trainer.events.index", "trainer.events.indexwrite",
          "trainer.rundir", "trainer.rundir.layout", "trainer.rundir.manifest",
          "trainer.rundir.checkpoints", "trainer.rundir.resolve", "trainer.rundir.retention",
          "trainer.rundir.history", "trainer.rundir.lock", "trainer.config",
          "trainer.config.schema", "trainer.config.build", "trainer.config.yamlfile",
          "trainer.corpus", "trainer.corpus.report", "trainer.corpus.headers",
          "trainer.corpus.metadata", "trainer.corpus.check",
          "trainer.train.signals", "trainer.checkpointing.lineage", "trainer.train.logsetup", "trainer.train.console",
          "trainer.train.errors"]  # fmt: skip


def _loaded_after_import(module: str, heavy: tuple[str, ...]) -> list[str]:
    code = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("module", CORE)
def test_core_module_is_headless(module):
    assert _loaded_after_import(module, ("textual", "rich", "torch", "numpy")) == []


@pytest.mark.parametrize("module", OTHERS)
def test_module_imports_no_torch_or_numpy(module):
    assert _loaded_after_import(module, ("torch", "numpy", "soundfile")) == []


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    p = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout


def test_preflight_without_models_stays_light(tmp_path):
    code = (
        "import json, sys; from nal_tui.preflight import run_checks; "
        f"run_checks('config/demo.yaml', {str(tmp_path / 'run')!r}, build_models=False); "
        "print(json.dumps([m for m in ('torch', 'numpy') if m in sys.modules]))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


def test_the_dashboard_imports_its_dialogs_and_key_screens_after_the_first_paint():
    """``nal_tui.ui.app`` leaves the screens behind keys (``LATER``) to be imported where
    first used (the open time waits for every import before the first paint), and
    ``import_later`` (run on a thread once the history has loaded) imports each of them."""
    from nal_tui.ui.app import LATER

    code = (
        "import json, sys; import nal_tui.cli, nal_tui.ui.app as a; "
        f"before = [m for m in {LATER!r} if m in sys.modules]; a.import_later(); "
        f"print(json.dumps([before, [m for m in {LATER!r} if m not in sys.modules]]))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    before, missing = json.loads(p.stdout)
    assert before == [] and missing == []
