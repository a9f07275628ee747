"""Words shared by every part of nal-tui: run status, PID-file state, alert kinds, levels.

Imports nothing else of ours, so any module can use it.
"""

from __future__ import annotations

# Run status, as the dashboard and ``nal-tui status`` show it (status.derive_status).
STATUS_NOT_STARTED = "not started"
STATUS_RUNNING = "running"
STATUS_STOPPING = "stopping"
STATUS_STOPPED = "stopped"
STATUS_COMPLETED = "completed"
STATUS_CRASHED = "crashed"
STATUS_STALE = "stale"
STATUSES = (
    STATUS_NOT_STARTED,
    STATUS_RUNNING,
    STATUS_STOPPING,
    STATUS_STOPPED,
    STATUS_COMPLETED,
    STATUS_CRASHED,
    STATUS_STALE,
)
ACTIVE_STATUSES = frozenset({STATUS_RUNNING, STATUS_STOPPING})
ENDED_STATUSES = frozenset({STATUS_STOPPED, STATUS_COMPLETED, STATUS_CRASHED})

# What the run's PID file says about the trainer (proc.pid_state reads it).
PID_NONE = "none"  # no PID file
PID_LIVE = "live"  # a live process matches pid, start time and a trainer command line
PID_STALE = "stale"  # the recorded process is gone, or the pid now belongs to another one
PID_GARBLED = "garbled"  # unreadable, not a regular file, too big, or not the expected JSON
PID_STATES = (PID_NONE, PID_LIVE, PID_STALE, PID_GARBLED)

# Alert kinds the dashboard derives itself (the trainer's own live in trainer.events;
# unknown kinds are shown generically).
ALERT_NONFINITE = "nonfinite"
ALERT_D_COLLAPSE = "d_collapse"
ALERT_IMBALANCE = "gd_imbalance"
ALERT_STALLED = "stalled"
ALERT_CRASHED = "crashed"
ALERT_RUN_FAILED = "run_failed"
ALERT_START_REFUSED = "start_refused"  # a failed run_end right after a run_end: nothing ran
ALERT_GARBLED = "garbled"
ALERT_BACKWARDS = "steps_backwards"
ALERT_BRANCH = "branch"  # a run_start below the last step: the later steps were abandoned

LEVEL_INFO = "info"
LEVEL_WARNING = "warning"
LEVEL_ERROR = "error"
LEVELS = (LEVEL_INFO, LEVEL_WARNING, LEVEL_ERROR)

# Stop outcomes (session.StopResult.status).
STOP_STOPPED = "stopped"
STOP_KILLED = "killed"
STOP_NOT_RUNNING = "not running"
STOP_STALE = "stale"
STOP_TIMEOUT = "timeout"
STOP_NO_RUN = "no run"
