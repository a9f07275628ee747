"""A run directory as the dashboard sees it: the UI's one route to ``trainer.rundir``.

The UI imports ``nal_tui.core`` only (an import-linter contract); what it needs of the
run directory's layout and history (the trainer's own definitions) it finds here.
"""

from __future__ import annotations

from pathlib import Path

from trainer.rundir.history import RunHistory as RunHistory
from trainer.rundir.history import run_history as run_history
from trainer.rundir.history import suggest_run_dir as suggest_run_dir
from trainer.rundir.layout import ABANDONED_DIR, CHECKPOINTS_DIR, CONFIG_FILE, EVENTS

ASIDE_DIR = f"{CHECKPOINTS_DIR}/{ABANDONED_DIR}/"  # where checkpoints are moved aside, as shown


def config_file(run_dir: Path) -> Path:
    """The run's resolved config (what a resume starts with)."""
    return run_dir / CONFIG_FILE


def events_file(run_dir: Path) -> Path:
    """The run's event log."""
    return run_dir / EVENTS
