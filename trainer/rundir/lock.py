"""The run lock (a flock on run.lock) and the PID file that names the trainer holding it.

A PID file's process is identified by pid, start time and command line together, so a
reused pid never passes for the trainer.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from trainer.rundir.layout import LOCK_FILE, PID_FILE, atomic_write_text, unlink_quiet


class RunLocked(RuntimeError):
    """Another trainer holds the run directory's lock."""


class PidFileError(ValueError):
    """A PID file that is not valid JSON or lacks/mistypes a field."""


@dataclass(frozen=True)
class PidInfo:
    pid: int
    create_time: float
    cmdline: list[str]
    started: float
    run_dir: str


CREATE_TIME_TOLERANCE = 1e-2


def read_pid_file(run_dir: str | os.PathLike[str]) -> PidInfo | None:
    """The trainer's PID file, or None when there is none; PidFileError if garbled."""
    path = Path(run_dir) / PID_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise PidFileError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_pid_info(data, str(path))


def parse_pid_info(data: bytes, where: str) -> PidInfo:
    """A PID file's content as PidInfo; PidFileError naming ``where`` and what is wrong."""
    try:
        d = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise PidFileError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise PidFileError(f"{where}: not a JSON object")
    spec = {
        "pid": int,
        "create_time": (int, float),
        "cmdline": list,
        "started": (int, float),
        "run_dir": str,
    }
    for key, types in spec.items():
        if key not in d:
            raise PidFileError(f"{where}: missing field {key!r}")
        if isinstance(d[key], bool) or not isinstance(d[key], types):
            raise PidFileError(f"{where}: field {key!r} has type {type(d[key]).__name__}")
    if not d["cmdline"] or not all(isinstance(a, str) for a in d["cmdline"]):
        raise PidFileError(f"{where}: field 'cmdline' must be a non-empty list of strings")
    if not 0 < d["pid"] < (1 << 31):
        raise PidFileError(f"{where}: field 'pid' out of range, got {d['pid']}")
    return PidInfo(
        pid=d["pid"],
        create_time=float(d["create_time"]),
        cmdline=list(d["cmdline"]),
        started=float(d["started"]),
        run_dir=d["run_dir"],
    )


def process_matches(info: PidInfo) -> bool:
    """True only if a live process has this pid, create_time and cmdline (gate for signals)."""
    try:
        proc = psutil.Process(info.pid)
        if abs(proc.create_time() - info.create_time) > CREATE_TIME_TOLERANCE:
            return False
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.cmdline() == info.cmdline
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def own_pid_info(run_dir: str | os.PathLike[str]) -> PidInfo:
    """PidInfo describing the current process."""
    me = psutil.Process()
    return PidInfo(
        pid=me.pid,
        create_time=me.create_time(),
        cmdline=me.cmdline(),
        started=time.time(),
        run_dir=os.path.abspath(run_dir),
    )


class RunLock:
    """Exclusive lock on a run directory plus its PID file; use as a context manager.

    The lock is a ``flock`` on ``run.lock``; it dies with the process, so a crash never
    leaves a stale lock. Caveat: forked DataLoader workers inherit the locked descriptor
    (O_CLOEXEC only covers exec), so the workers of a killed trainer hold the lock until
    they exit, which they do once they notice the parent is gone.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None
        self._owner_pid: int | None = None
        self.info: PidInfo | None = None

    def acquire(self) -> PidInfo:
        if self._fd is not None:
            raise RuntimeError(f"{self.run_dir}: lock already held by this RunLock")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.run_dir / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLocked(self._locked_message()) from None
            raise
        try:
            info = own_pid_info(self.run_dir)
            # The pid also goes into the lock file: a fallback for the message above when
            # the PID file is gone (e.g. removed by hand).
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{info.pid}\n".encode(), 0)
            atomic_write_text(self.run_dir / PID_FILE, json.dumps(asdict(info)) + "\n")
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self._fd, self._owner_pid, self.info = fd, os.getpid(), info
        return info

    def _locked_message(self) -> str:
        owner = "unknown pid"
        try:
            info = read_pid_file(self.run_dir)
            if info is not None:
                owner = f"pid {info.pid}, started {time.ctime(info.started)}"
        except PidFileError:
            pass
        if owner == "unknown pid":
            try:
                txt = (self.run_dir / LOCK_FILE).read_text().strip()
                if txt.isdigit():
                    owner = f"pid {txt}"
            except OSError:
                pass
        return (
            f"{self.run_dir} is in use by another trainer ({owner}); "
            f"stop it first, or wait for its DataLoader workers to exit"
        )

    def release(self) -> None:
        # A forked child must not unlock: flock on the inherited descriptor would drop the
        # parent's lock too.
        if self._fd is None or os.getpid() != self._owner_pid:
            return
        try:
            current = read_pid_file(self.run_dir)
        except PidFileError:
            current = None
        if (
            current is not None
            and self.info is not None
            and current.pid == self.info.pid
            and abs(current.create_time - self.info.create_time) <= CREATE_TIME_TOLERANCE
        ):
            unlink_quiet(self.run_dir / PID_FILE)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
