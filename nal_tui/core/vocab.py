"""Words shared by every part of nal-tui: run status, PID-file state, levels, stop outcomes.

Imports only trainer.events.schema, so any module can use it.
"""

from __future__ import annotations

# The losses every step row carries: the UI's one route to trainer.events.schema.LOSS_KEYS.
from trainer.events.schema import ALERT_LEVELS
from trainer.events.schema import ALERT_OVERTRAINING as ALERT_OVERTRAINING  # the quality chart
from trainer.events.schema import LOSS_KEYS as LOSS_KEYS
from trainer.events.schema import OPT_KEYS as OPT_KEYS  # lr and gradient norms, charted too
from trainer.events.schema import SERIES_KEYS as SERIES_KEYS

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

# Alert kinds (the trainer's and those the dashboard derives) are one list in
# trainer.events.schema (ALERT_*, ALERT_KINDS); core modules import them from there.

# Alert levels: the schema's list, named.
LEVELS = ALERT_LEVELS
LEVEL_INFO, LEVEL_WARNING, LEVEL_ERROR = LEVELS

# Stop outcomes (session.StopResult.status).
STOP_STOPPED = "stopped"
STOP_KILLED = "killed"
STOP_NOT_RUNNING = "not running"
STOP_STALE = "stale"
STOP_TIMEOUT = "timeout"
STOP_NO_RUN = "no run"
