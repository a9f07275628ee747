"""Process identity and signalling: the only code in nal-tui that sends a signal.

"Our trainer" is a process whose command line is the trainer's (``nal-train``,
``python -m trainer``, or torchrun running it) and whose pid, start time and command
line match the run's PID file. Signals go to that process and the ranks its torchrun
agent started (checked the same way), never to a process group: a trainer started from a
shell, a wrapper script or a batch job shares their group. The PID file is read without
following links or blocking, and refused when it is not a small regular file of JSON.

Between ``nal-tui start`` launching the trainer and the trainer writing its PID file (its
imports take seconds), ``<run>/launch.json`` names the launched process (the trainer, or
the torchrun agent): written by the launcher at once, same fields, checked the same way
(``trainer_state``), so a stop right after a start finds the run. Only nal-tui reads or
writes it; a stale one (the process is gone) is ignored, never acted on or reported.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import stat
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from nal_tui.core.text import clean
from nal_tui.core.vocab import PID_GARBLED, PID_LIVE, PID_NONE, PID_STALE
from trainer.rundir.layout import PID_FILE
from trainer.rundir.lock import PidFileError, PidInfo, parse_pid_info, process_matches

MAX_PID_FILE = 64 << 10  # a real one is a few hundred bytes
LAUNCH_FILE = "launch.json"  # the process nal-tui launched, until the trainer's PID file
TRAINER_MODULE = "trainer"
TRAINER_SCRIPT = "nal-train"
_LAUNCHERS = ("torchrun",)
_LAUNCHER_MODULE = "torch.distributed.run"


class PidFileRefused(PidFileError):
    """A PID file that is not a small regular file of the expected JSON."""


def read_pid_file(run_dir: str | os.PathLike[str], name: str = PID_FILE) -> PidInfo | None:
    """The run's PID file (or ``name``: LAUNCH_FILE), or None when there is none. Never
    follows a symlink, never blocks on a FIFO or device, never reads more than MAX_PID_FILE
    bytes."""
    path = Path(run_dir) / name
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise PidFileRefused(f"{path}: is a symbolic link (refused)") from None
        raise PidFileRefused(f"{path}: cannot open ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PidFileRefused(f"{path}: not a regular file (refused)")
        if st.st_size > MAX_PID_FILE:
            raise PidFileRefused(f"{path}: {st.st_size} bytes, too large for a PID file")
        data = os.read(fd, MAX_PID_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PID_FILE:
        raise PidFileRefused(f"{path}: too large for a PID file")
    return parse_pid_file(data, str(path))


def parse_pid_file(data: bytes, where: str) -> PidInfo:
    """The trainer's own PID file rule (``trainer.rundir.parse_pid_info``), refused here."""
    try:
        return parse_pid_info(data, where)
    except PidFileError as e:
        raise PidFileRefused(str(e)) from None


def is_trainer_cmdline(cmd: list[str]) -> bool:
    """``nal-train ...``, ``python .../nal-train ...``, ``python -m trainer ...``, or torchrun
    (``torchrun`` / ``python -m torch.distributed.run``) running one of those."""
    if not cmd:
        return False
    for i, arg in enumerate(cmd[:3]):
        if os.path.basename(arg) == TRAINER_SCRIPT:
            return True
        if arg == "-m" and i + 1 < len(cmd) and cmd[i + 1] == TRAINER_MODULE:
            return True
    if is_launcher_cmdline(cmd):
        for i, arg in enumerate(cmd):
            if arg == "-m" and i + 1 < len(cmd) and cmd[i + 1] == TRAINER_MODULE:
                return True
            if os.path.basename(arg) == TRAINER_SCRIPT:
                return True
    return False


def is_launcher_cmdline(cmd: list[str]) -> bool:
    return any(os.path.basename(c) in _LAUNCHERS for c in cmd[:2]) or (_LAUNCHER_MODULE in cmd[:4])


def matches(info: PidInfo) -> bool:
    """A live, non-zombie process with this pid, start time and command line, which is
    our trainer."""
    return is_trainer_cmdline(info.cmdline) and process_matches(info)


@dataclass(frozen=True)
class PidState:
    """What the PID file says and whether it names our live trainer."""

    state: str  # vocab.PID_*
    info: PidInfo | None
    message: str
    launched: bool = False  # from launch.json: started, no PID file yet

    @property
    def live(self) -> bool:
        return self.state == PID_LIVE

    @property
    def pid(self) -> int | None:
        return self.info.pid if self.info is not None else None


def pid_state(run_dir: str | os.PathLike[str]) -> PidState:
    path = Path(run_dir) / PID_FILE
    try:
        info = read_pid_file(run_dir)
    except PidFileError as e:
        return PidState(PID_GARBLED, None, f"{clean(e)}; remove {path} if no trainer is running")
    if info is None:
        return PidState(PID_NONE, None, "no PID file")
    if matches(info):
        return PidState(PID_LIVE, info, f"trainer pid {info.pid} is running")
    return PidState(
        PID_STALE,
        info,
        f"{path} names pid {info.pid}, which is no longer this run's trainer "
        "(stale PID file; remove it to clear)",
    )


def write_launch_file(run_dir: Path, pid: int) -> PidInfo | None:
    """Record the process just launched for ``run_dir`` (None when it is already gone).

    Its command line is read back from the system (a script's interpreter shows there), so
    ``matches`` checks it exactly as it checks the trainer's own PID file.
    """
    try:
        p = psutil.Process(pid)
        cmdline = p.cmdline()
        # Popen returns as soon as the child execs; the kernel lays out the new command
        # line a moment later, and until then it reads empty. Wait for it (bounded); a
        # child that exits meanwhile (a zombie shows no command line) is not recorded.
        deadline = time.monotonic() + 10.0
        while not cmdline and time.monotonic() < deadline:
            if p.status() == psutil.STATUS_ZOMBIE:
                return None
            time.sleep(0.01)
            cmdline = p.cmdline()
        info = PidInfo(pid, p.create_time(), cmdline, time.time(), str(run_dir))
    except psutil.Error:
        return None
    if not info.cmdline:
        return None
    path = run_dir / LAUNCH_FILE
    tmp = path.with_name(f".{LAUNCH_FILE}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps(asdict(info)))
        os.replace(tmp, path)  # readers see the whole file or none
    except OSError:
        tmp.unlink(missing_ok=True)
        return None
    return info


def remove_launch_file(run_dir: Path, info: PidInfo) -> None:
    """Remove launch.json if it still names ``info``'s process (never another's)."""
    try:
        cur = read_pid_file(run_dir, LAUNCH_FILE)
    except PidFileError:
        return
    if cur is not None and (cur.pid, cur.create_time) == (info.pid, info.create_time):
        (run_dir / LAUNCH_FILE).unlink(missing_ok=True)


def launched_state(run_dir: str | os.PathLike[str]) -> PidState:
    """What launch.json says: PID_LIVE only for our live launched process."""
    try:
        info = read_pid_file(run_dir, LAUNCH_FILE)
    except PidFileError as e:
        return PidState(PID_GARBLED, None, clean(e), launched=True)
    if info is None:
        return PidState(PID_NONE, None, "no launch file", launched=True)
    if matches(info):
        msg = f"trainer pid {info.pid} is starting (launched; no PID file yet)"
        return PidState(PID_LIVE, info, msg, launched=True)
    return PidState(PID_STALE, info, f"launched pid {info.pid} is gone", launched=True)


def trainer_state(run_dir: str | os.PathLike[str]) -> PidState:
    """The run's trainer: its PID file when that names a live trainer, else the process
    nal-tui launched and that has not written one yet, else what the PID file says (a stale
    launch.json is ignored)."""
    st = pid_state(run_dir)
    if st.live:
        return st
    ln = launched_state(run_dir)
    return ln if ln.live else st


# ------------------------------------------------------------------------ signalling


def family(info: PidInfo) -> tuple[psutil.Process | None, list[psutil.Process]]:
    """(torchrun agent or None, the ranks): from the verified trainer, never by name.

    The agent counts only when its own command line runs our trainer; its ranks only
    when each one's command line is our trainer's. When ``info`` names the agent itself
    (launch.json), its ranks are those it has started so far (maybe none yet).
    """
    me = psutil.Process(info.pid)
    if is_launcher_cmdline(info.cmdline):
        return me, family_ranks(me)
    parent = me.parent()
    if parent is not None:
        try:
            pcmd = parent.cmdline()
        except psutil.Error:
            pcmd = []
        if is_launcher_cmdline(pcmd) and is_trainer_cmdline(pcmd):
            return parent, family_ranks(parent) or [me]
    return None, [me]


def family_ranks(agent: psutil.Process) -> list[psutil.Process]:
    """The torchrun agent's children whose command line is our trainer's."""
    ranks = []
    try:
        kids = agent.children()
    except psutil.Error:
        return []
    for c in kids:
        try:
            if is_trainer_cmdline(c.cmdline()):
                ranks.append(c)
        except psutil.Error:
            continue
    return ranks


def rank_pids(info: PidInfo) -> dict[int, int]:
    """pid -> rank of the verified trainer's ranks (``family``): the rank torchrun gave
    each in its environment (RANK), else their order of starting; a lone trainer is 0."""
    try:
        _, ranks = family(info)
        ranks.sort(key=lambda p: (p.create_time(), p.pid))
    except psutil.Error:
        return {}
    out = {}
    for i, p in enumerate(ranks):
        try:
            rank = int(p.environ().get("RANK", i)) if len(ranks) > 1 else 0
        except (psutil.Error, ValueError):
            rank = i
        out[p.pid] = rank
    return out


def signal_procs(procs: list[psutil.Process], sig: signal.Signals) -> list[int]:
    """Send ``sig`` to each process (psutil re-checks it is the same process first)."""
    done = []
    for p in procs:
        try:
            p.send_signal(sig)
            done.append(p.pid)
        except psutil.Error:
            continue
    return done


def descendants(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            out += p.children(recursive=True)
        except psutil.Error:
            continue
    return out


def any_alive(procs: list[psutil.Process]) -> bool:
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            continue
    return False


class Children:
    """Trainers this process started (Popen objects), polled so none stays a zombie.

    Safe across threads: the dashboard starts from a worker thread and reaps from the
    sampler thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs[proc.pid] = proc

    def get(self, pid: int) -> subprocess.Popen[bytes] | None:
        with self._lock:
            return self._procs.get(pid)

    def reap(self) -> list[tuple[int, int]]:
        """(pid, exit code) of each child that exited since the last call."""
        out = []
        with self._lock:
            for pid, p in list(self._procs.items()):
                code = p.poll()
                if code is not None:
                    del self._procs[pid]
                    out.append((pid, code))
        return out

    def pids(self) -> list[int]:
        with self._lock:
            return list(self._procs)


CHILDREN = Children()
