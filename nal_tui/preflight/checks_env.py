"""Checks 4-8: installation, trainer, model components, resources, run state."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from nal_tui.core.control import command, proc
from nal_tui.core.control.nproc import nproc_limit
from nal_tui.core.text import clean
from nal_tui.core.vocab import PID_GARBLED, PID_LIVE, PID_STALE
from nal_tui.preflight.estimates import (
    _human_count,
    estimate_disk,
    estimate_memory,
    estimate_params,
    human_bytes,
)
from nal_tui.preflight.report import (
    FAIL,
    PASS,
    SUMMARY_TIMEOUT_S,
    SUPPORTED,
    TRAINER_TIMEOUT_S,
    VERIFY_TIMEOUT_S,
    WARN,
    CheckResult,
)
from trainer.config.threads import BusyProcess, busy_warning, resolve_threads, usable_cpus
from trainer.rundir.history import fresh_start_refusal, run_history, suggest_run_dir
from trainer.rundir.layout import ABANDONED_DIR, CHECKPOINTS_DIR, PID_FILE


def _version_tuple(v: str) -> tuple[int, ...]:
    m = re.match(r"\d+(?:\.\d+)*", v)
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def _installed(dist: str) -> str | None:
    # importlib.metadata (~13 ms with email & co.) only when the check runs: the dashboard
    # imports preflight at start-up
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_installation(version_of: Callable[[str], str | None] = _installed) -> CheckResult:
    """4. Dependencies at supported versions (metadata only: torch is not imported)."""
    name = "Installation"
    problems, have = [], []
    for dist, (lo, hi) in SUPPORTED.items():
        v = version_of(dist)
        want = ">=" + ".".join(map(str, lo)) + (f",<{'.'.join(map(str, hi))}" if hi else "")
        if v is None:
            problems.append(f"{dist} is not installed (need {want})")
            continue
        t = _version_tuple(v)
        if t < lo or (hi is not None and t[: len(hi)] >= hi):
            problems.append(f"{dist} {v} is not supported (need {want})")
        elif dist in ("torch", "textual"):
            have.append(f"{dist} {v}")
    info = [_cuda_info()]
    if problems:
        return CheckResult(
            name,
            FAIL,
            problems[0],
            "pip install -e '.[dev]' in the project's virtual environment (torch must be 2.13.x)",
            details=problems[1:] + info,
        )
    return CheckResult(
        name, PASS, f"dependencies at supported versions ({', '.join(have)})", details=info
    )


def _cuda_info() -> str:
    """CUDA availability as information, without importing torch."""
    drv = Path("/proc/driver/nvidia/version")
    if drv.exists() or shutil.which("nvidia-smi"):
        return "info: NVIDIA driver found; CUDA training is possible with a CUDA build of torch"
    return "info: no NVIDIA driver found; training runs on the CPU"


class _Sub:
    """A subprocess started now and collected later, so slow checks overlap the fast ones."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self.error = ""
        try:
            self.proc: subprocess.Popen[str] | None = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as e:
            self.proc, self.error = None, f"cannot run {cmd[0]}: {e.strerror or e}"

    def result(self, timeout: float) -> tuple[int | None, str, str]:
        if self.proc is None:
            return None, "", self.error
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return None, "", f"no answer within {timeout:.0f} s"
        return self.proc.returncode, out, err


def _last_lines(text: str, n: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-n:])


def check_trainer(sub: _Sub, timeout: float = TRAINER_TIMEOUT_S) -> CheckResult:
    """5. ``nal-train`` is installed and runs."""
    rc, out, err = sub.result(timeout)
    shown = " ".join(sub.cmd[:-1] if sub.cmd[-1] == "--help" else sub.cmd)
    if rc == 0 and "train" in out:
        return CheckResult("Trainer", PASS, f"{shown} runs")
    why = err.strip() and _last_lines(err) or f"exit code {rc}"
    return CheckResult(
        "Trainer",
        FAIL,
        f"{shown} --help failed: {why}",
        "pip install -e '.[dev]' so the nal-train command is installed",
    )


def parse_summary(out: str) -> dict[str, int]:
    """Parameter counts from ``nal-train summary`` (its JSON object; other lines ignored)."""
    for text in (out, *reversed(out.strip().splitlines())):
        try:
            d = json.loads(text)
        except ValueError:
            continue
        if isinstance(d, dict):
            return {k: v for k, v in d.items() if isinstance(v, int) and not isinstance(v, bool)}
    raise ValueError("no JSON object in the output")


def check_models(
    sub: _Sub, timeout: float = SUMMARY_TIMEOUT_S
) -> tuple[CheckResult, dict[str, int]]:
    """6. The configured generator and discriminators can be built (sizes reported)."""
    name = "Model components"
    rc, out, err = sub.result(timeout)
    if rc != 0:
        why = err.strip() and _last_lines(err) or f"exit code {rc}"
        return CheckResult(
            name,
            FAIL,
            f"building the models failed: {why}",
            "check the generator/discriminator sections of the config",
        ), {}
    try:
        counts = parse_summary(out)
    except ValueError as e:
        return CheckResult(name, FAIL, f"nal-train summary: {e}", "reinstall the project"), {}
    # "discriminators" / "total" are sums of the parts already listed.
    shown = {k: v for k, v in counts.items() if k not in ("total", "discriminators")}
    parts = [f"{k} {_human_count(v)}" for k, v in (shown or counts).items()]
    return CheckResult(name, PASS, "built: " + ", ".join(parts) + " parameters"), counts


def _model_params(counts: dict[str, int]) -> int:
    if "total" in counts:
        return counts["total"]
    return sum(v for k, v in counts.items() if k in ("generator", "mpd", "msd", "discriminator"))


def _gpu_memory() -> tuple[int, int] | None:
    """(total, free) bytes of the first GPU from nvidia-smi, or None."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        total, free = (int(x) for x in out.splitlines()[0].split(","))
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    return total << 20, free << 20


def check_resources(
    cfg: Any,
    run_dir: Path,
    counts: dict[str, int] | None = None,
    *,
    disk_free: int | None = None,
    mem_available: int | None = None,
    mem_total: int | None = None,
    gpu: tuple[int, int] | None | bool = False,
    busy: list[BusyProcess] | None = None,
    nproc: int = 1,
) -> CheckResult:
    """7. CPU cores and threads, memory for the configured batch, disk for the checkpoints
    and samples.

    ``disk_free``, ``mem_available``, ``mem_total`` and ``gpu`` (total, free) override
    what the machine reports (``gpu=False``: ask nvidia-smi when the config may use CUDA).
    ``busy``: other processes keeping CPUs busy (``trainer.config.threads.busy_processes``;
    None: not looked at).
    """
    name = "System resources"
    est = "from nal-train summary" if counts else "estimated from the config"
    params = _model_params(counts) if counts else sum(estimate_params(cfg).values())
    need_mem = estimate_memory(cfg, params)
    disk = estimate_disk(cfg, params)
    if mem_available is None or mem_total is None:
        vm = psutil.virtual_memory()
        mem_available = vm.available if mem_available is None else mem_available
        mem_total = vm.total if mem_total is None else mem_total
    if gpu is False:
        gpu = _gpu_memory() if cfg.train.device != "cpu" else None
    if disk_free is None:
        probe = next((p for p in (run_dir, *run_dir.resolve().parents) if p.exists()), Path("."))
        disk_free = shutil.disk_usage(probe).free
    cores = usable_cpus()
    threads = resolve_threads(cfg.train.threads, nproc)
    how = "train.threads" if cfg.train.threads else "one per physical core"
    busy_msg = busy_warning(busy or [], threads * nproc, cores)
    details = [
        f"info: {cores} CPU core(s); {_human_count(params)} parameters ({est})",
        f"threads: {threads} per trainer process ({how})"
        + (f"; {clean(busy_msg, 400)}" if busy_msg else ""),
        f"memory: about {human_bytes(need_mem)} for batch {cfg.train.batch_size} "
        f"(segment {cfg.audio.segment_size}); {human_bytes(mem_available)} of "
        f"{human_bytes(mem_total)} RAM available"
        + (f"; GPU {human_bytes(gpu[1])} free of {human_bytes(gpu[0])}" if gpu else ""),
        f"disk: {cfg.checkpoint.keep_last}+1 checkpoints x {human_bytes(disk.checkpoint)}"
        f" + samples {human_bytes(disk.samples)} + logs {human_bytes(disk.logs)} = "
        f"{human_bytes(disk.required)}; {human_bytes(disk_free)} free",
    ]
    mem_total_dev, mem_free_dev, where = (
        (gpu[0], gpu[1], "GPU") if gpu else (mem_total, mem_available, "RAM")
    )
    too_many = nproc_limit(cfg.train.device).refusal(nproc)  # the start's own rule
    if too_many is not None:
        return CheckResult(name, FAIL, too_many, "choose fewer processes (--nproc N)", details)
    if disk.required > disk_free:
        return CheckResult(
            name,
            FAIL,
            f"not enough disk: the run needs about "
            f"{human_bytes(disk.required)}, {human_bytes(disk_free)} is free "
            f"on {run_dir}'s filesystem",
            "free some space, lower checkpoint.keep_last, or choose a --run-dir on a larger disk",
            details,
        )
    if need_mem > mem_total_dev:
        return CheckResult(
            name,
            FAIL,
            f"the configured batch needs about {human_bytes(need_mem)}"
            f", more than the {human_bytes(mem_total_dev)} of {where}",
            "lower train.batch_size or audio.segment_size",
            details,
        )
    warn = None
    if need_mem > mem_free_dev:
        warn = (
            f"about {human_bytes(need_mem)} of memory needed, {human_bytes(mem_free_dev)} "
            f"of {where} is free now",
            "close other programs or lower train.batch_size",
        )
    elif disk.with_milestones > disk_free:
        warn = (
            f"milestone checkpoints up to step {cfg.train.max_steps} need about "
            f"{human_bytes(disk.with_milestones)}, {human_bytes(disk_free)} is free",
            "free space before the run gets there, or raise checkpoint.milestone_every",
        )
    elif busy_msg:
        warn = (
            clean(busy_msg, 400),
            "stop the other process, or lower train.threads (nal-train train --threads N) "
            "to the CPUs it leaves free",
        )
    if warn:
        return CheckResult(name, WARN, warn[0], warn[1], details)
    return CheckResult(
        name,
        PASS,
        f"{cores} cores, memory and disk suffice "
        f"(~{human_bytes(need_mem)} memory, ~{human_bytes(disk.required)} disk)",
        details=details,
    )


def verify_command(
    base: list[str],
    run_dir: Path,
    checkpoint: str,
    config: str | os.PathLike[str] | None = None,
) -> list[str]:
    """``nal-train verify --json``: the trainer's own load test of a resume checkpoint."""
    cmd = [*base, "verify", "--run-dir", str(run_dir), "--checkpoint", str(checkpoint)]
    if config is not None:
        cmd += ["--config", str(config)]
    return [*cmd, "--json"]


def _verify(sub: _Sub, timeout: float) -> tuple[bool, str, int | None, list[str]]:
    """(usable, message, step, skipped lines) from ``nal-train verify --json``."""
    rc, out, err = sub.result(timeout)
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    try:
        d = json.loads(lines[-1]) if lines else None
    except ValueError:
        d = None
    if not isinstance(d, dict):
        why = _last_lines(err) or _last_lines(out) or f"exit code {rc}"
        return (
            False,
            f"the load test (nal-train verify) did not answer: {clean(why, 400)}",
            None,
            [],
        )
    skipped = [
        f"skipped {Path(str(s.get('path', '?'))).name}: {clean(s.get('reason', ''), 300)}"
        for s in d.get("skipped") or []
        if isinstance(s, dict)
    ]
    step = d.get("step") if isinstance(d.get("step"), int) else None
    return d.get("ok") is True and rc == 0, clean(d.get("message", ""), 600), step, skipped


def check_run_state(
    run_dir: Path,
    resume: str | None = None,
    *,
    new_branch: bool = False,
    verify: _Sub | None = None,
    timeout: float = VERIFY_TIMEOUT_S,
) -> CheckResult:
    """8. No live trainer owns the run dir; a fresh start does not land in a run dir that
    already holds a run (the trainer refuses it, unless it starts a new branch); a resume
    checkpoint passes the trainer's full load test (``nal-train verify``, in a subprocess)."""
    name = "Run state"
    st = proc.trainer_state(run_dir)
    if st.state == PID_LIVE and st.info is not None:
        return CheckResult(
            name,
            FAIL,
            f"a trainer (pid {st.info.pid}, started "
            f"{time.ctime(st.info.started)}) already owns {run_dir}",
            f"stop it first (nal-tui stop --run-dir {run_dir}) or choose another --run-dir",
        )
    details: list[str] = []
    warn = None
    if st.state in (PID_STALE, PID_GARBLED):
        warn = (
            st.message,
            f"no trainer is running there: delete {run_dir / PID_FILE} "
            "(the next start also replaces it)",
        )
    if resume is not None:
        if not run_dir.is_dir():
            return CheckResult(name, FAIL, f"cannot resume: there is no run directory {run_dir}")
        if verify is None:
            verify = _Sub(verify_command(command.trainer_base_command()[0], run_dir, resume))
        ok, why, step, skipped = _verify(verify, timeout)
        if not ok:
            return CheckResult(
                name,
                FAIL,
                f"cannot resume: {why}",
                "resume from another checkpoint, or start a new run",
                skipped + details,
            )
        details += skipped
        msg = f"resume from step {step}: {why} (the trainer's load test)"
    else:
        hist = run_history(run_dir) if run_dir.is_dir() else None
        if hist is not None and not new_branch:
            other = suggest_run_dir(run_dir)
            return CheckResult(
                name,
                FAIL,
                clean(fresh_start_refusal(run_dir, hist, choices=False), 1000),
                f"nal-tui resume --run-dir {run_dir}; or start with --run-dir {other}; or "
                f"start with --new-branch",
            )
        if hist is not None:
            msg = (
                f"a new branch from step 0 in {run_dir}: its {hist.n_checkpoints} checkpoint(s) "
                f"(last step {hist.last_step}) are moved aside to "
                f"{CHECKPOINTS_DIR}/{ABANDONED_DIR}/, nothing is deleted"
            )
        else:
            msg = f"{run_dir} is free"
    if warn:
        return CheckResult(name, WARN, warn[0], warn[1], details + [msg])
    return CheckResult(name, PASS, msg, details=details)
