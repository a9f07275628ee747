"""``RunSession``: every action on one run, for the dashboard and ``nal-tui`` alike.

open, status, latest, verify_checkpoints, start, resume, stop, kill: each returns a
result dataclass; nothing here knows about a terminal. The trainer runs detached (its own
session, output appended to ``train.log``), so it outlives whoever started it and a new
session finds it again through its PID file (``proc``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nal_tui.core.control import launch, proc, stopping
from nal_tui.core.control.nproc import NprocLimit, limit_for
from nal_tui.core.control.results import (
    LatestResult,
    StartResult,
    StatusResult,
    StopResult,
    exit_name,
)
from nal_tui.core.control.runs import is_run_dir, latest_run, read_status, similar_runs
from nal_tui.core.defaults import DEFAULT_GRACE_S, DEFAULT_LOGS, START_WAIT_S, default_run_dir
from nal_tui.core.text import clean
from nal_tui.core.vocab import PID_LIVE, PID_NONE, STOP_NO_RUN, STOP_NOT_RUNNING, STOP_STALE
from trainer.rundir.checkpoints import CheckpointInfo, verify_checkpoint
from trainer.rundir.history import RunHistory, fresh_start_refusal, run_history, suggest_run_dir
from trainer.rundir.layout import CONFIG_FILE, PID_FILE, CheckpointError
from trainer.rundir.resolve import describe_skipped, latest_checkpoint, resolve_checkpoint

__all__ = [
    "LatestResult", "RunSession", "StartResult", "StatusResult", "StopResult", "exit_name",
]  # fmt: skip

Verify = Callable[[CheckpointInfo], tuple[bool, str]]


class RunSession:
    """One run directory (``None`` before any run exists) and what can be done to it."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | None,
        *,
        logs_dir: str | os.PathLike[str] = DEFAULT_LOGS,
        trainer_base: tuple[list[str], str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.logs_dir = Path(logs_dir)
        self.trainer_base = trainer_base
        self.env = env

    @classmethod
    def open(
        cls, run_dir: str | os.PathLike[str] | None, logs_dir=DEFAULT_LOGS, **kw: Any
    ) -> RunSession:
        """The given run, else the most recent under ``logs_dir`` (None on a fresh clone)."""
        if run_dir is None:
            latest = latest_run(logs_dir)
            run_dir = latest.path if latest is not None else None
        return cls(run_dir, logs_dir=logs_dir, **kw)

    def problem(self) -> str | None:
        """Why this session has no usable run directory, or None."""
        rd = self.run_dir
        if rd is None:
            return f"no training run yet under {self.logs_dir}"
        if not rd.exists():
            similar = similar_runs(rd, self.logs_dir)
            hint = f" (did you mean {' or '.join(map(str, similar))}?)" if similar else ""
            return f"{rd} does not exist{hint}"
        if not rd.is_dir():
            return f"{rd} is not a directory"
        if not is_run_dir(rd) and not any((rd / f).exists() for f in (PID_FILE, proc.LAUNCH_FILE)):
            return f"{rd} is not a run directory (no events.jsonl, config.yaml or train.log)"
        return None

    # ---- looking

    def trainer(self) -> proc.PidState:
        proc.CHILDREN.reap()
        if self.run_dir is None:
            return proc.PidState(PID_NONE, None, "no run")
        return proc.trainer_state(self.run_dir)

    def latest(self, verify: Verify = verify_checkpoint) -> LatestResult:
        """The newest verified checkpoint of the run, and the newer ones skipped."""
        if self.run_dir is None:
            return LatestResult(None, None, [], "no run")
        info, skipped = latest_checkpoint(self.run_dir, verify=verify)
        sk = [(str(i.path), clean(r)) for i, r in skipped]
        if info is None:
            return LatestResult(None, None, sk, "no complete, verified checkpoint")
        return LatestResult(str(info.path), info.step, sk, f"{info.path.name} (step {info.step})")

    def status(self, verify: Verify | None = None) -> StatusResult:
        """The run's status by the one rule, plus its latest checkpoint."""
        bad = self.problem()
        if bad is not None:
            return StatusResult(False, str(self.run_dir or ""), "", message=bad)
        st = read_status(self.run_dir)
        res = StatusResult(
            True,
            str(self.run_dir),
            st.status,
            st.reason,
            st.step,
            st.target_step,
            st.pid.pid if st.pid.live else None,
            st.pid.state,
            st.pid.message,
            st.last_event,
            st.last_event_t,
            st.run_end,
        )
        latest = self.latest(verify or verify_checkpoint)
        res.latest_checkpoint, res.latest_step = latest.checkpoint, latest.step
        return res

    # ---- starting

    def nproc_limit(self, config_path: str | os.PathLike[str]) -> NprocLimit:
        """How many processes a start of ``config_path`` may use (nal_tui.core.control.nproc)."""
        return limit_for(config_path, self.env)

    def history(self) -> RunHistory | None:
        """What the run dir already holds (None: no run there), by trainer.rundir's rule."""
        return run_history(self.run_dir) if self.run_dir is not None else None

    def start_refusal(self, config_path: str | os.PathLike[str]) -> StartResult | None:
        """Why a fresh start (no resume, no new branch) must not use this run dir: it already
        holds a run. The trainer's own refusal, plus the same choices as nal-tui commands;
        None when the start may go ahead (or a live trainer will refuse it anyway)."""
        rd = self.run_dir
        if rd is None or self.trainer().live:
            return None
        hist = self.history()
        if hist is None:
            return None
        other = suggest_run_dir(rd)
        cfg = f" --config {config_path}"
        # Resuming needs a complete checkpoint (a run killed during its first save has none).
        resume = (
            f"  continue it:        nal-tui resume --run-dir {rd}\n" if hist.n_checkpoints else ""
        )
        msg = (
            f"{clean(fresh_start_refusal(rd, hist, choices=False), 1000)} Choose:\n"
            f"{resume}"
            f"  a new run:          nal-tui start{cfg} --run-dir {other}\n"
            f"  start over there:   nal-tui start{cfg} --run-dir {rd} --new-branch"
            f"  (its {hist.n_checkpoints} checkpoint(s) are moved aside, not deleted)"
        )
        return StartResult(
            False, msg, str(rd), config_path=str(config_path), refused=True,
            suggested_run_dir=str(other),
        )  # fmt: skip

    def start(
        self,
        config_path: str | os.PathLike[str],
        *,
        target_step: int | None = None,
        nproc: int = 1,
        resume: str | None = None,
        wait_s: float = START_WAIT_S,
        new_branch: bool = False,
        init_from: str | os.PathLike[str] | None = None,
        init_generator_only: bool = False,
    ) -> StartResult:
        """Start the trainer detached (``init_from``: fine-tuning from that checkpoint); wait (up to ``wait_s``) until it holds the run lock.

        ``nproc`` beyond what the machine allows (``nproc_limit``) is refused, naming the
        limit, before anything is launched.

        Without a run dir, the run goes to ``<logs>/<config name>`` (and the session
        follows it). A fresh start in a run dir that already holds a run is refused
        (``start_refusal``), unless ``new_branch``: then the trainer starts over from step 0
        there and moves the run's checkpoints aside (nothing is deleted).
        """
        # The config schema is only needed to start: kept off ``nal-tui status``'s path.
        from trainer.config.schema import ConfigError

        too_many = self.nproc_limit(config_path).refusal(nproc)
        if too_many is not None:
            return StartResult(
                False, f"not starting: {too_many}", str(self.run_dir or ""), nproc=nproc,
                config_path=str(config_path), target_step=target_step, resume=resume,
            )  # fmt: skip
        try:
            rd = self.run_dir or default_run_dir(config_path, self.logs_dir)
        except ConfigError as e:
            return StartResult(False, clean(e), "", config_path=str(config_path))
        self.run_dir = rd
        proc.CHILDREN.reap()
        if resume is None and not new_branch:
            refused = self.start_refusal(config_path)
            if refused is not None:
                refused.nproc, refused.target_step = nproc, target_step
                return refused
        return launch.start(
            rd, config_path, resume=resume, target_step=target_step, nproc=nproc,
            base=self.trainer_base, env=self.env, wait_s=wait_s, new_branch=new_branch,
            init_from=init_from, init_generator_only=init_generator_only,
        )  # fmt: skip

    def resume(
        self,
        checkpoint: str = "latest",
        *,
        target_step: int | None = None,
        nproc: int = 1,
        config_path: str | os.PathLike[str] | None = None,
        wait_s: float = START_WAIT_S,
        verify: Verify = verify_checkpoint,
    ) -> StartResult:
        """Resume from the latest verified checkpoint (or ``checkpoint``)."""
        bad = self.problem()
        rd = self.run_dir
        if bad is not None or rd is None:
            return StartResult(False, bad or "no run", str(rd or ""), resume=checkpoint)
        cfg = Path(config_path) if config_path is not None else rd / CONFIG_FILE
        fail = StartResult(
            False, "", str(rd), nproc=nproc, config_path=str(cfg), resume=checkpoint,
            target_step=target_step,
        )  # fmt: skip
        if not cfg.is_file():
            fail.message = f"{cfg}: no config to resume with (is {rd} a run directory?)"
            return fail
        found: CheckpointInfo | None = None
        skipped: list[tuple[CheckpointInfo, str]] = []
        if checkpoint == "latest":  # also name the newer ones that failed, as the trainer does
            found, skipped = latest_checkpoint(rd, verify=verify)
        try:
            info = found or resolve_checkpoint(rd, checkpoint, verify=verify)
        except CheckpointError as e:
            fail.message = clean(e, 600)
            return fail
        if target_step is not None and target_step <= info.step:
            fail.message = (
                f"target step {target_step} is not beyond the checkpoint's step {info.step}; "
                "choose a larger --target-step"
            )
            return fail
        res = self.start(
            cfg, target_step=target_step, nproc=nproc, resume=str(info.path), wait_s=wait_s
        )
        if res.ok:
            res.message = f"resuming from step {info.step} ({info.path.name}): {res.message}"
            if skipped:
                why = clean(describe_skipped(skipped), 400)
                res.message += f"; skipped newer checkpoint(s) that fail the check: {why}"
        return res

    # ---- stopping

    def stop(
        self,
        grace_s: float = DEFAULT_GRACE_S,
        kill_after_s: float | None = None,
        poll_s: float = 0.1,
    ) -> StopResult:
        """SIGTERM to the verified trainer (and its ranks); wait for them to exit.

        Right after a start, before the trainer has written its PID file, the process the
        start launched (launch.json: the trainer, or the torchrun agent, which passes the
        signal on to its ranks) is stopped instead. SIGKILL only when ``kill_after_s`` is
        given and they outlive it; otherwise a timeout after ``grace_s`` is reported and
        nothing more is sent.
        """
        bad = self.problem()
        rd = self.run_dir
        if bad is not None or rd is None:
            return StopResult(False, STOP_NO_RUN, bad or "no run", str(rd or ""))
        st = self.trainer()
        if st.state == PID_NONE:
            return StopResult(True, STOP_NOT_RUNNING, f"no trainer is running in {rd}", str(rd))
        if st.state != PID_LIVE or st.info is None:
            return StopResult(False, STOP_STALE, f"not signalling anything: {st.message}", str(rd))
        return stopping.stop(rd, st, grace_s, kill_after_s, poll_s)

    def kill(self) -> StopResult:
        """SIGKILL to the verified trainer, its ranks and their workers (user's request)."""
        return self.stop(kill_after_s=0.0)
