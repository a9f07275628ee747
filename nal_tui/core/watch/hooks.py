"""Command hooks: ``--on-alert CMD`` / ``--on-end CMD`` run through the shell with the
notice as one JSON object on stdin and NAL_RUN_DIR, NAL_ALERT_KIND, NAL_ALERT_LEVEL,
NAL_STEP in the environment. A hook that outlives ``timeout_s`` is killed with its whole
process group (its own session, started by us: nobody else's processes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Any

from nal_tui.core.text import clean
from trainer.events.codec import nonfinite_as_strings

DEFAULT_HOOK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HookResult:
    ok: bool
    message: str  # "" when ok; one line, cleaned, when not


def hook_env(payload: dict[str, Any]) -> dict[str, str]:
    step = payload.get("step")
    return {
        "NAL_RUN_DIR": str(payload.get("run_dir", "")),
        "NAL_ALERT_KIND": str(payload.get("kind", "")),
        "NAL_ALERT_LEVEL": str(payload.get("level", "")),
        "NAL_STEP": "" if step is None else str(step),
    }


def run_hook(cmd: str, payload: dict[str, Any], timeout_s: float) -> HookResult:
    """Run ``cmd`` once; never raises for the hook's own failures."""
    env = {**os.environ, **hook_env(payload)}
    # Valid JSON for any reader (jq, JSON.parse): a NaN loss is written as the log writes
    # it, the string "nan", not as the bare NaN that json.dumps allows.
    data = (json.dumps(nonfinite_as_strings(payload), default=str) + "\n").encode()
    try:
        proc = subprocess.Popen(
            cmd, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env, start_new_session=True,
        )  # fmt: skip
    except OSError as e:
        return HookResult(False, f"cannot start: {clean(e.strerror or e)}")
    try:
        _, err = proc.communicate(data, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return HookResult(False, f"still running after {timeout_s:g} s: killed")
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        tail = clean(lines[-1], 160) if lines else ""
        how = (
            f"killed by signal {-proc.returncode}" if proc.returncode < 0
            else f"exit code {proc.returncode}"
        )  # fmt: skip
        return HookResult(False, how + (f" ({tail})" if tail else ""))
    return HookResult(True, "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # start_new_session made the hook the leader of its own group: only its processes.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # a grandchild holding the pipe open: give up on it
        proc.kill()
        proc.wait()
