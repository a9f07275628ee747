"""``RunSession``: every action on one run, for the dashboard and ``nal-tui`` alike.

open, status, latest, verify_checkpoints, start, resume, stop, kill: each returns a
result dataclass; nothing here knows about a terminal. The trainer runs detached (its own
session, output appended to ``train.log``), so it outlives whoever started it and a new
session finds it again through its PID file (``proc``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from trainer import events as ev
from trainer import rundir

from . import proc
from .command import trainer_command
from .defaults import DEFAULT_GRACE_S, DEFAULT_LOGS, KILL_WAIT_S, START_WAIT_S, default_run_dir
from .runs import is_run_dir, latest_run, read_status
from .text import clean, clean_lines
from .vocab import (
    PID_LIVE,
    PID_NONE,
    STOP_KILLED,
    STOP_NO_RUN,
    STOP_NOT_RUNNING,
    STOP_STALE,
    STOP_STOPPED,
    STOP_TIMEOUT,
)

Verify = Callable[[rundir.CheckpointInfo], tuple[bool, str]]
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


def _latest(run_dir: Path, verify: Verify) -> tuple[Any, list[tuple[Any, str]]]:
    """``trainer.rundir.latest_checkpoint`` (the one definition) where it exists."""
    fn = getattr(rundir, "latest_checkpoint", None)
    if fn is not None:
        return fn(run_dir, verify=verify)
    skipped = []
    for info in reversed(rundir.list_checkpoints(run_dir)):
        ok, why = verify(info)
        if ok:
            return info, skipped
        skipped.append((info, why))
    return None, skipped


def _resolve(run_dir: Path, which: str, verify: Verify) -> rundir.CheckpointInfo:
    """``latest`` or a path (absolute, from the cwd, or from the run dir), verified."""
    fn = getattr(rundir, "resolve_checkpoint", None)
    if fn is not None:
        return fn(run_dir, which, verify=verify)
    if which == "latest":
        info, skipped = _latest(run_dir, verify)
        if info is None:
            why = "; ".join(f"{i.path.name}: {r}" for i, r in skipped)
            where = run_dir / rundir.CHECKPOINTS_DIR
            raise rundir.NoValidCheckpoint(
                f"no complete, verified checkpoint in {where}" + (f" ({why})" if why else "")
            )
        return info
    p = Path(which)
    if not p.is_absolute() and not p.exists():
        p = run_dir / p
    info = rundir.checkpoint_info(p)
    ok, why = verify(info)
    if not ok:
        raise rundir.NoValidCheckpoint(f"{info.path}: cannot resume from it: {why}")
    return info


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
            return f"{rd} does not exist"
        if not rd.is_dir():
            return f"{rd} is not a directory"
        if not is_run_dir(rd) and not (rd / rundir.PID_FILE).exists():
            return f"{rd} is not a run directory (no events.jsonl or config.yaml)"
        return None

    # ---- looking

    def trainer(self) -> proc.PidState:
        proc.CHILDREN.reap()
        if self.run_dir is None:
            return proc.PidState(PID_NONE, None, "no run")
        return proc.pid_state(self.run_dir)

    def latest(self, verify: Verify = rundir.verify_checkpoint) -> LatestResult:
        """The newest verified checkpoint of the run, and the newer ones skipped."""
        if self.run_dir is None:
            return LatestResult(None, None, [], "no run")
        info, skipped = _latest(self.run_dir, verify)
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
        latest = self.latest(verify or rundir.verify_checkpoint)
        res.latest_checkpoint, res.latest_step = latest.checkpoint, latest.step
        return res

    # ---- starting

    def start(
        self,
        config_path: str | os.PathLike[str],
        *,
        target_step: int | None = None,
        nproc: int = 1,
        resume: str | None = None,
        wait_s: float = START_WAIT_S,
    ) -> StartResult:
        """Start the trainer detached; wait (up to ``wait_s``) until it holds the run lock.

        Without a run dir, the run goes to ``<logs>/<config name>`` (and the session
        follows it).
        """
        from trainer.config import ConfigError

        if nproc < 1:
            raise ValueError(f"nproc must be >= 1, got {nproc}")
        try:
            rd = self.run_dir or default_run_dir(config_path, self.logs_dir)
        except ConfigError as e:
            return StartResult(False, clean(e), "", config_path=str(config_path))
        self.run_dir = rd
        cmd, launcher = trainer_command(
            config_path, rd, resume=resume, target_step=target_step, nproc=nproc,
            base=self.trainer_base,
        )  # fmt: skip
        res = StartResult(
            False, "", str(rd), cmd, launcher, nproc, log_path=str(rd / rundir.TRAIN_LOG),
            config_path=str(config_path), resume=resume, target_step=target_step,
        )  # fmt: skip
        live = self.trainer()
        if live.live:
            res.trainer_pid = live.pid
            res.message = (
                f"a trainer (pid {live.pid}) is already running in {rd}; "
                f"stop it first (nal-tui stop --run-dir {rd})"
            )
            return res
        try:
            rd.mkdir(parents=True, exist_ok=True)
            log = open(rd / rundir.TRAIN_LOG, "ab")  # noqa: SIM115 - handed to the child
        except OSError as e:
            res.message = f"{rd}: cannot create the run directory or train.log ({e.strerror})"
            return res
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")  # train.log shows output as it happens
        try:
            with log:
                log.write(f"\n=== nal-tui {time.strftime('%F %T')}: {' '.join(cmd)}\n".encode())
                log.flush()
                child = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, close_fds=True, env=env,
                )  # fmt: skip
        except OSError as e:
            res.message = f"cannot run {cmd[0]}: {e.strerror or e}"
            return res
        proc.CHILDREN.add(child)
        res.pid = child.pid
        return self._wait_started(res, child, rd, wait_s)

    def _wait_started(
        self, res: StartResult, child: subprocess.Popen[bytes], rd: Path, wait_s: float
    ) -> StartResult:
        deadline = time.monotonic() + wait_s
        while True:
            code = child.poll()
            st = proc.pid_state(rd)
            if st.live and st.info is not None and _owned_by(st.info.pid, child.pid):
                res.ok, res.trainer_pid = True, st.info.pid
                res.message = (
                    f"trainer started (pid {st.info.pid}) in {rd}; output in {res.log_path}"
                )
                return res
            if code is not None:
                proc.CHILDREN.reap()
                res.exit_code = code
                tail = clean_lines(_log_tail(rd / rundir.TRAIN_LOG), 15)
                res.message = (
                    f"the trainer exited with code {code} ({exit_name(code)}) before it "
                    f"started; last lines of {res.log_path}:\n{tail}"
                )
                return res
            if time.monotonic() >= deadline:
                res.ok = True
                res.message = (
                    f"trainer launched (pid {child.pid}) in {rd} but has not taken the run "
                    f"lock after {wait_s:.0f} s; see {res.log_path}"
                )
                return res
            time.sleep(0.1)

    def resume(
        self,
        checkpoint: str = "latest",
        *,
        target_step: int | None = None,
        nproc: int = 1,
        config_path: str | os.PathLike[str] | None = None,
        wait_s: float = START_WAIT_S,
        verify: Verify = rundir.verify_checkpoint,
    ) -> StartResult:
        """Resume from the latest verified checkpoint (or ``checkpoint``)."""
        bad = self.problem()
        rd = self.run_dir
        if bad is not None or rd is None:
            return StartResult(False, bad or "no run", str(rd or ""), resume=checkpoint)
        cfg = Path(config_path) if config_path is not None else rd / rundir.CONFIG_FILE
        fail = StartResult(
            False, "", str(rd), nproc=nproc, config_path=str(cfg), resume=checkpoint,
            target_step=target_step,
        )  # fmt: skip
        if not cfg.is_file():
            fail.message = f"{cfg}: no config to resume with (is {rd} a run directory?)"
            return fail
        try:
            info = _resolve(rd, checkpoint, verify)
        except rundir.CheckpointError as e:
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
        return res

    # ---- stopping

    def stop(
        self,
        grace_s: float = DEFAULT_GRACE_S,
        kill_after_s: float | None = None,
        poll_s: float = 0.1,
    ) -> StopResult:
        """SIGTERM to the verified trainer (and its ranks); wait for them to exit.

        SIGKILL only when ``kill_after_s`` is given and they outlive it; otherwise a
        timeout after ``grace_s`` is reported and nothing more is sent.
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
        info = st.info
        res = StopResult(False, STOP_TIMEOUT, "", str(rd), pid=info.pid)
        offset = _size(rd / rundir.EVENTS)
        t0 = time.monotonic()
        try:
            agent, ranks = proc.family(info)
        except psutil.Error:
            return StopResult(True, STOP_NOT_RUNNING, f"pid {info.pid} already exited", str(rd))
        res.signals.append(f"SIGTERM to {proc.signal_procs(ranks, signal.SIGTERM)}")
        everyone = ranks + ([agent] if agent is not None else [])
        limit = kill_after_s if kill_after_s is not None else grace_s
        killed = False
        while proc.any_alive(everyone):
            proc.CHILDREN.reap()
            elapsed = time.monotonic() - t0
            if killed and elapsed > limit + KILL_WAIT_S:
                res.waited_s = elapsed
                res.message = f"pid {info.pid} survived SIGKILL for {KILL_WAIT_S:.0f} s"
                return res
            if not killed and elapsed >= limit:
                if kill_after_s is None:
                    res.waited_s = elapsed
                    res.message = (
                        f"trainer pid {info.pid} is still running {elapsed:.0f} s after "
                        "SIGTERM (it may be finishing a step or a checkpoint); wait, or "
                        f"force it with: nal-tui stop --run-dir {rd} --kill-after 0"
                    )
                    return res
                res.signals.append(f"SIGKILL to {self._kill(agent, ranks)}")
                killed = True
            time.sleep(poll_s)
        proc.CHILDREN.reap()
        res.waited_s = time.monotonic() - t0
        res.run_end = _run_end_after(rd / rundir.EVENTS, offset)
        res.ok = True
        if killed:
            res.status = STOP_KILLED
            res.message = (
                f"trainer pid {info.pid} killed (SIGKILL) after {limit:.0f} s; no final "
                "checkpoint was written; resume uses the latest verified one"
            )
        else:
            res.status = STOP_STOPPED
            end = res.run_end
            res.message = (
                f"trainer pid {info.pid} stopped at step {end['step']} (run_end: "
                f"{end['status']}) after {res.waited_s:.1f} s"
                if end is not None
                else f"trainer pid {info.pid} exited after {res.waited_s:.1f} s without "
                f"writing run_end; see {rd / rundir.TRAIN_LOG}"
            )
        return res

    def kill(self) -> StopResult:
        """SIGKILL to the verified trainer, its ranks and their workers (user's request)."""
        return self.stop(kill_after_s=0.0)

    @staticmethod
    def _kill(agent: psutil.Process | None, ranks: list[psutil.Process]) -> list[int]:
        targets = ranks + proc.descendants(ranks) + ([agent] if agent is not None else [])
        return proc.signal_procs(targets, signal.SIGKILL)


def _owned_by(trainer_pid: int, launched_pid: int) -> bool:
    if trainer_pid == launched_pid:
        return True
    try:
        return any(p.pid == trainer_pid for p in psutil.Process(launched_pid).children(True))
    except psutil.Error:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_tail(path: Path, nbytes: int = 8192) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _run_end_after(path: Path, offset: int) -> dict[str, Any] | None:
    """The last run_end written after byte ``offset`` of the event log."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(64 << 20)
    except OSError:
        return None
    lines = [line for line in data.split(b"\n") if b"run_end" in line]
    recs = [r for r in ev.parse_lines(lines)[0] if r[ev.K_EVENT] == "run_end"]
    if not recs:
        return None
    return {k: clean(v) if isinstance(v, str) else v for k, v in recs[-1].items()}
