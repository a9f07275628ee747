"""Start, stop and resume the trainer; find it again through its verified PID file.

The trainer runs detached (its own session and process group, output appended to
``train.log``), so it outlives the dashboard. A process is signalled only after psutil
confirms the PID file's pid, create time and command line (``rundir.process_matches``);
a stale or garbled PID file is reported, never acted on. Torch-free.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from nal_tui.runs import PID_GARBLED, PID_LIVE, PID_NONE, PID_STALE, PidState, pid_state
from trainer import events as ev
from trainer import rundir

DEFAULT_GRACE_S = 120.0  # a stop finishes the step and saves a checkpoint first
START_WAIT_S = 30.0  # how long start waits for the trainer to take the run lock
KILL_WAIT_S = 10.0

# StopResult.status values.
STOP_STOPPED = "stopped"  # exited after SIGTERM (run_end status in StopResult.run_end)
STOP_KILLED = "killed"
STOP_NOT_RUNNING = "not running"
STOP_STALE = "stale"
STOP_TIMEOUT = "timeout"

# Popen objects of trainers this process started: polled so they never linger as zombies.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class ControlError(RuntimeError):
    """A control action that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class TrainerProc:
    """A live trainer whose identity psutil confirmed."""

    pid: int
    pgid: int | None
    create_time: float
    cmdline: list[str]
    started: float
    run_dir: str


@dataclass
class StartResult:
    ok: bool
    message: str
    run_dir: str
    command: list[str]
    launcher: str  # "nal-train", "python -m trainer" or "torchrun"
    nproc: int = 1
    pid: int | None = None  # the launched process (torchrun's agent when nproc > 1)
    pgid: int | None = None
    trainer_pid: int | None = None  # from the PID file, once the trainer took the lock
    log_path: str = ""
    config_path: str = ""
    resume: str | None = None
    target_step: int | None = None
    exit_code: int | None = None  # set when the trainer exited while start waited

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StopResult:
    ok: bool
    status: str  # one of STOP_*
    message: str
    run_dir: str
    pid: int | None = None
    signals: list[str] = field(default_factory=list)
    waited_s: float = 0.0
    run_end: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------ finding


def reap_children() -> None:
    """Collect exit statuses of trainers we started, so none stays a zombie."""
    for pid, p in list(_CHILDREN.items()):
        if p.poll() is not None:
            del _CHILDREN[pid]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def trainer_process(run_dir: str | os.PathLike[str]) -> TrainerProc | None:
    """The live trainer owning ``run_dir`` (PID-file identity verified), or None."""
    reap_children()
    st = pid_state(run_dir)
    if st.state != PID_LIVE or st.info is None:
        return None
    i = st.info
    return TrainerProc(
        pid=i.pid,
        pgid=_pgid(i.pid),
        create_time=i.create_time,
        cmdline=list(i.cmdline),
        started=i.started,
        run_dir=i.run_dir,
    )


# ----------------------------------------------------------------------- starting


def trainer_base_command() -> tuple[list[str], str]:
    """How to run ``nal-train``: the script next to this Python, on PATH, or ``-m trainer``."""
    script = Path(sys.executable).parent / "nal-train"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)], "nal-train"
    found = shutil.which("nal-train")
    if found:
        return [found], "nal-train"
    return [sys.executable, "-m", "trainer"], "python -m trainer"


def trainer_command(
    config_path: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    resume: str | None = None,
    target_step: int | None = None,
    nproc: int = 1,
) -> tuple[list[str], str]:
    """The trainer's command line and a name for its launcher."""
    args = ["train", "--config", str(config_path), "--run-dir", str(run_dir)]
    if resume is not None:
        args += ["--resume", str(resume)]
    if target_step is not None:
        args += ["--target-step", str(target_step)]
    if nproc > 1:
        # --standalone: a local rendezvous on a free port, so two runs never collide.
        return (
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node",
                str(nproc),
                "-m",
                "trainer",
                *args,
            ],
            "torchrun",
        )
    base, launcher = trainer_base_command()
    return [*base, *args], launcher


def default_run_dir(
    config_path: str | os.PathLike[str], logs_dir: str | os.PathLike[str] = "logs"
) -> Path:
    """``logs/<config name>``, the trainer's default; ConfigError for a bad config."""
    from trainer.config import load

    return Path(logs_dir) / load(config_path).name


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _owned_by(trainer_pid: int, launched_pid: int) -> bool:
    """True when the trainer is the launched process or one of its descendants."""
    if trainer_pid == launched_pid:
        return True
    try:
        return any(p.pid == trainer_pid for p in psutil.Process(launched_pid).children(True))
    except psutil.Error:
        return False


def start_run(
    config_path: str | os.PathLike[str],
    run_dir: str | os.PathLike[str] | None = None,
    *,
    nproc: int = 1,
    target_step: int | None = None,
    resume: str | None = None,
    wait_s: float = START_WAIT_S,
    logs_dir: str | os.PathLike[str] = "logs",
    env: dict[str, str] | None = None,
) -> StartResult:
    """Start the trainer detached and wait (up to ``wait_s``) until it holds the run lock."""
    from trainer.config import ConfigError

    config_path = Path(config_path)
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    try:
        rd = Path(run_dir) if run_dir is not None else default_run_dir(config_path, logs_dir)
    except ConfigError as e:
        return StartResult(
            False, str(e), str(run_dir or ""), [], "", nproc, config_path=str(config_path)
        )
    cmd, launcher = trainer_command(
        config_path, rd, resume=resume, target_step=target_step, nproc=nproc
    )
    res = StartResult(
        False,
        "",
        str(rd),
        cmd,
        launcher,
        nproc,
        config_path=str(config_path),
        log_path=str(rd / rundir.TRAIN_LOG),
        resume=resume,
        target_step=target_step,
    )
    live = trainer_process(rd)
    if live is not None:
        res.message = (
            f"a trainer (pid {live.pid}) is already running in {rd}; "
            f"stop it first (nal-tui stop --run-dir {rd})"
        )
        res.trainer_pid = live.pid
        return res
    try:
        rd.mkdir(parents=True, exist_ok=True)
        log = open(rd / rundir.TRAIN_LOG, "ab")  # noqa: SIM115 - handed to the child
    except OSError as e:
        res.message = f"{rd}: cannot create the run directory or its train.log ({e.strerror or e})"
        return res
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")  # train.log shows output as it happens
    try:
        with log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n=== nal-tui {stamp}: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=child_env,
            )
    except OSError as e:
        res.message = f"cannot run {cmd[0]}: {e.strerror or e}"
        return res
    _CHILDREN[proc.pid] = proc
    res.pid, res.pgid = proc.pid, _pgid(proc.pid)
    return _wait_started(res, proc, rd, wait_s)


def _wait_started(
    res: StartResult, proc: subprocess.Popen[bytes], rd: Path, wait_s: float
) -> StartResult:
    deadline = time.monotonic() + wait_s
    while True:
        code = proc.poll()
        st = pid_state(rd)
        if st.live and st.info is not None and _owned_by(st.info.pid, proc.pid):
            res.ok, res.trainer_pid = True, st.info.pid
            res.message = f"trainer started (pid {st.info.pid}) in {rd}; output in {res.log_path}"
            return res
        if code is not None:
            _CHILDREN.pop(proc.pid, None)
            res.exit_code = code
            tail = _log_tail(rd / rundir.TRAIN_LOG)
            res.message = (
                f"the trainer exited with code {code} ({_exit_name(code)}) before "
                f"it started; last lines of {res.log_path}:\n{tail}"
            )
            return res
        if time.monotonic() >= deadline:
            res.ok = True
            res.message = (
                f"trainer launched (pid {proc.pid}) in {rd} but has not taken the "
                f"run lock yet after {wait_s:.0f} s; see {res.log_path}"
            )
            return res
        time.sleep(0.1)


def _exit_name(code: int) -> str:
    names = {
        ev.EXIT_OK: "ok",
        ev.EXIT_FAILED: "failed",
        ev.EXIT_USAGE: "usage error",
        ev.EXIT_LOCKED: "run directory locked",
        ev.EXIT_NONFINITE: "non-finite losses",
        ev.EXIT_NO_CHECKPOINT: "no valid checkpoint",
    }
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return names.get(code, "error")


# ----------------------------------------------------------------------- resuming


def find_checkpoint(
    run_dir: str | os.PathLike[str], checkpoint: str = "latest"
) -> tuple[rundir.CheckpointInfo, list[str]]:
    """The checkpoint to resume from, hash-verified; raises ControlError when there is none.

    Returns it with notes on newer checkpoints that failed verification and were skipped.
    """
    notes: list[str] = []
    if checkpoint != "latest":
        try:
            info = rundir.checkpoint_info(checkpoint)
        except rundir.CheckpointError as e:
            raise ControlError(str(e)) from None
        ok, why = rundir.verify_checkpoint(info)
        if not ok:
            raise ControlError(f"{info.path}: cannot resume from it: {why}")
        return info, notes
    cks = rundir.list_checkpoints(run_dir)
    for info in reversed(cks):
        ok, why = rundir.verify_checkpoint(info)
        if ok:
            return info, notes
        notes.append(f"skipped {info.path.name}: {why}")
    where = Path(run_dir) / rundir.CHECKPOINTS_DIR
    detail = f" ({'; '.join(notes)})" if notes else ""
    raise ControlError(f"no complete, verified checkpoint in {where}{detail}")


def resume_run(
    run_dir: str | os.PathLike[str],
    checkpoint: str = "latest",
    *,
    target_step: int | None = None,
    nproc: int = 1,
    config_path: str | os.PathLike[str] | None = None,
    wait_s: float = START_WAIT_S,
) -> StartResult:
    """Resume from the latest verified checkpoint (or ``checkpoint``), maybe to a new target."""
    rd = Path(run_dir)
    cfg = Path(config_path) if config_path is not None else rd / rundir.CONFIG_FILE
    fail = StartResult(
        False,
        "",
        str(rd),
        [],
        "",
        nproc,
        config_path=str(cfg),
        resume=checkpoint,
        target_step=target_step,
    )
    if not cfg.is_file():
        fail.message = f"{cfg}: no config to resume with (is {rd} a run directory?)"
        return fail
    try:
        info, notes = find_checkpoint(rd, checkpoint)
    except ControlError as e:
        fail.message = str(e)
        return fail
    if target_step is not None and target_step <= info.step:
        fail.message = (
            f"target step {target_step} is not beyond the checkpoint's step "
            f"{info.step}; choose a larger --target-step"
        )
        return fail
    res = start_run(
        cfg, rd, nproc=nproc, target_step=target_step, resume=str(info.path), wait_s=wait_s
    )
    if res.ok:
        res.message = f"resuming from step {info.step} ({info.path.name}): {res.message}"
    if notes:
        res.message += "\n" + "\n".join(notes)
    return res


# ----------------------------------------------------------------------- stopping


def _verified(run_dir: str | os.PathLike[str]) -> tuple[rundir.PidInfo, PidState]:
    st = pid_state(run_dir)
    if st.state == PID_LIVE and st.info is not None:
        return st.info, st
    if st.state == PID_NONE:
        raise ControlError(f"no trainer is running in {run_dir} (no PID file)")
    raise ControlError(f"not signalling anything: {st.message}")


def _is_launcher(proc: psutil.Process) -> bool:
    """A torchrun agent (``torchrun`` or ``python -m torch.distributed.run``)."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return "torch.distributed.run" in cmd or any(Path(c).name == "torchrun" for c in cmd[:2])


def _family(info: rundir.PidInfo) -> tuple[psutil.Process | None, list[psutil.Process]]:
    """(torchrun agent or None, every rank): found from the verified trainer, never by name."""
    me = psutil.Process(info.pid)
    parent = me.parent()
    if parent is not None and _is_launcher(parent):
        try:
            return parent, parent.children() or [me]
        except psutil.Error:
            pass
    return None, [me]


def _signal_tree(procs: list[psutil.Process], sig: signal.Signals) -> list[str]:
    """Signal each process's group, or, for one in our own group, it and its descendants."""
    done: list[str] = []
    ours = os.getpgrp()
    for p in procs:
        pgid = _pgid(p.pid)
        try:
            if pgid is not None and pgid != ours:
                os.killpg(pgid, sig)  # the rank and its DataLoader workers
                done.append(f"group {pgid}")
                continue
            # Never signal our own group (a trainer started without its own session).
            kids = p.children(recursive=True)
            for q in (p, *kids):
                os.kill(q.pid, sig)
            done.append(f"pid {p.pid} (+{len(kids)})")
        except (ProcessLookupError, psutil.Error):
            continue
    return done


def _send(info: rundir.PidInfo, sig: signal.Signals) -> tuple[str, list[psutil.Process]]:
    """Signal every rank of the verified trainer, re-verifying first; returns (what, procs).

    torchrun starts each rank in its own session, so each rank's group gets the signal.
    SIGTERM spares the torchrun agent (it would SIGKILL ranks still saving after 30 s; it
    exits by itself once they finish); SIGKILL reaches the agent too.
    """
    if not rundir.process_matches(info):
        raise ControlError(f"pid {info.pid} is no longer the trainer; not signalled")
    try:
        agent, ranks = _family(info)
    except psutil.Error:
        raise ControlError(f"pid {info.pid} exited; not signalled") from None
    targets = ranks + ([agent] if agent is not None and sig == signal.SIGKILL else [])
    done = _signal_tree(targets, sig)
    who = f"{len(ranks)} ranks" if agent is not None else f"trainer pid {info.pid}"
    return f"{sig.name} to {who}: {', '.join(done)}", ranks + ([agent] if agent else [])


def _any_alive(procs: list[psutil.Process]) -> bool:
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            continue
    return False


def send_stop(run_dir: str | os.PathLike[str]) -> TrainerProc:
    """Send SIGTERM to the verified trainer (non-blocking, for the dashboard)."""
    info, _ = _verified(run_dir)
    _send(info, signal.SIGTERM)
    return TrainerProc(
        info.pid, _pgid(info.pid), info.create_time, list(info.cmdline), info.started, info.run_dir
    )


def send_kill(run_dir: str | os.PathLike[str]) -> TrainerProc:
    """Send SIGKILL to the verified trainer's group (only on an explicit user request)."""
    info, _ = _verified(run_dir)
    _send(info, signal.SIGKILL)
    return TrainerProc(
        info.pid, _pgid(info.pid), info.create_time, list(info.cmdline), info.started, info.run_dir
    )


def _events_size(rd: Path) -> int:
    try:
        return (rd / rundir.EVENTS).stat().st_size
    except OSError:
        return 0


def _run_end_after(rd: Path, offset: int) -> dict[str, Any] | None:
    """The last run_end written after byte ``offset`` of the event log."""
    try:
        with open(rd / rundir.EVENTS, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return None
    found = None
    for line in data.split(b"\n"):
        if b'"run_end"' in line:
            try:
                rec = ev.loads(line)
            except ev.EventError:
                continue
            if rec.get(ev.K_EVENT) == "run_end":
                found = rec
    return found


def stop_run(
    run_dir: str | os.PathLike[str],
    grace_s: float = DEFAULT_GRACE_S,
    kill_after_s: float | None = None,
    poll_s: float = 0.1,
) -> StopResult:
    """SIGTERM the verified trainer's group, wait for it to exit (and write run_end).

    SIGKILL is sent only when ``kill_after_s`` is given and the trainer is still alive that
    many seconds after SIGTERM; otherwise it waits ``grace_s`` and reports a timeout.
    """
    rd = Path(run_dir)
    st = pid_state(rd)
    if st.state == PID_NONE:
        return StopResult(True, STOP_NOT_RUNNING, f"no trainer is running in {rd}", str(rd))
    if st.state in (PID_STALE, PID_GARBLED) or st.info is None:
        return StopResult(False, STOP_STALE, f"not signalling anything: {st.message}", str(rd))
    info = st.info
    res = StopResult(False, STOP_TIMEOUT, "", str(rd), pid=info.pid)
    offset = _events_size(rd)
    t0 = time.monotonic()
    try:
        what, family = _send(info, signal.SIGTERM)
        res.signals.append(what)
    except ControlError as e:
        res.status, res.message = STOP_STALE, str(e)
        return res
    limit = kill_after_s if kill_after_s is not None else grace_s
    killed = False
    while True:
        reap_children()
        main_alive = rundir.process_matches(info)
        elapsed = time.monotonic() - t0
        if not _any_alive(family) or (not main_alive and elapsed >= limit + KILL_WAIT_S):
            break  # all ranks gone (stragglers of a finished trainer are not waited on forever)
        if killed and elapsed > limit + KILL_WAIT_S:
            res.waited_s = elapsed
            res.message = f"pid {info.pid} survived SIGKILL for {KILL_WAIT_S:.0f} s"
            return res
        if not killed and elapsed >= limit:
            if kill_after_s is None:
                res.waited_s = elapsed
                res.message = (
                    f"trainer pid {info.pid} is still running {elapsed:.0f} s after "
                    f"SIGTERM (it may be finishing a step or a checkpoint); wait, or "
                    f"force it with: nal-tui stop --run-dir {rd} --kill-after 0"
                )
                return res
            if main_alive:
                try:
                    res.signals.append(_send(info, signal.SIGKILL)[0])
                except ControlError:
                    pass  # it exited between the check and the signal
            for p in family:  # ranks left over; psutil re-checks each one's identity
                try:
                    p.kill()
                except psutil.Error:
                    pass
            killed = True
        time.sleep(poll_s)
    res.waited_s = time.monotonic() - t0
    res.run_end = _run_end_after(rd, offset)
    res.ok = True
    if killed:
        res.status = STOP_KILLED
        res.message = (
            f"trainer pid {info.pid} killed (SIGKILL) after {limit:.0f} s; no final "
            f"checkpoint was written; resume uses the latest verified one"
        )
    elif res.run_end is not None:
        res.status = STOP_STOPPED
        res.message = (
            f"trainer pid {info.pid} stopped at step {res.run_end.get('step')} "
            f"(run_end: {res.run_end.get('status')}) after {res.waited_s:.1f} s"
        )
    else:
        res.status = STOP_STOPPED
        res.message = (
            f"trainer pid {info.pid} exited after {res.waited_s:.1f} s without "
            f"writing run_end; see {rd / rundir.TRAIN_LOG}"
        )
    return res


__all__ = [
    "ControlError",
    "StartResult",
    "StopResult",
    "TrainerProc",
    "default_run_dir",
    "find_checkpoint",
    "reap_children",
    "trainer_base_command",
    "resume_run",
    "send_kill",
    "send_stop",
    "start_run",
    "stop_run",
    "trainer_command",
    "trainer_process",
]
