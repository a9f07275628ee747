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


def moved_aside_by(run_dir: Path, checkpoint: str | Path) -> tuple[str, ...]:
    """The checkpoints (run-dir relative paths, by step) that a resume from ``checkpoint``
    moves aside: the trainer's own plan (``trainer.rundir.branching.plan_start``). Empty
    when it cannot tell (the trainer's load test names the problem at start)."""
    # The plan reads every manifest: only when a resume dialog opens.
    from trainer.rundir.branching import plan_start
    from trainer.rundir.checkpoints import checkpoint_info
    from trainer.rundir.layout import CheckpointError

    p = Path(checkpoint)
    try:
        plan = plan_start(run_dir, checkpoint_info(p if p.is_absolute() else run_dir / p))
    except (CheckpointError, OSError):
        return ()
    out = []
    for c in sorted(plan.abandon, key=lambda c: c.step):
        try:
            out.append(str(c.path.relative_to(run_dir)))
        except ValueError:
            out.append(str(c.path))
    return tuple(out)
