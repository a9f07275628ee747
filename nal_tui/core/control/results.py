"""What ``RunSession`` actions return: plain dataclasses (``to_dict`` for ``--json``)."""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field
from typing import Any

from nal_tui.core.vocab import PID_NONE
from trainer.events import schema as ev

_EXIT_NAMES = {
    ev.EXIT_OK: "ok",
    ev.EXIT_FAILED: "failed",
    ev.EXIT_USAGE: "usage error",
    ev.EXIT_LOCKED: "run directory locked",
    ev.EXIT_NONFINITE: "non-finite losses",
    ev.EXIT_NO_CHECKPOINT: "no valid checkpoint",
}


class _Result:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class StartResult(_Result):
    ok: bool
    message: str
    run_dir: str
    command: list[str] = field(default_factory=list)
    launcher: str = ""
    nproc: int = 1
    pid: int | None = None  # the launched process (torchrun's agent when nproc > 1)
    trainer_pid: int | None = None  # from the PID file, once the trainer took the lock
    log_path: str = ""
    config_path: str = ""
    resume: str | None = None
    target_step: int | None = None
    exit_code: int | None = None  # the trainer exited while start waited
    new_branch: bool = False  # start over from step 0 in a run dir that holds a run
    refused: bool = False  # a fresh start in a run dir that already holds a run (usage)
    suggested_run_dir: str | None = None  # with ``refused``: a free sibling for a new run


@dataclass
class StopResult(_Result):
    ok: bool
    status: str  # vocab.STOP_*
    message: str
    run_dir: str
    pid: int | None = None
    signals: list[str] = field(default_factory=list)
    waited_s: float = 0.0
    run_end: dict[str, Any] | None = None


@dataclass
class LatestResult(_Result):
    checkpoint: str | None
    step: int | None
    skipped: list[tuple[str, str]]
    message: str


@dataclass
class StatusResult(_Result):
    ok: bool
    run_dir: str
    status: str
    reason: str = ""
    step: int | None = None
    target_step: int | None = None
    pid: int | None = None
    pid_file: str = PID_NONE
    pid_message: str = ""
    last_event: str | None = None
    last_event_t: float | None = None
    run_end: dict[str, Any] | None = None
    latest_checkpoint: str | None = None
    latest_step: int | None = None
    message: str = ""


def exit_name(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return _EXIT_NAMES.get(code, "error")
