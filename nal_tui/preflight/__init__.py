"""Preflight checks run before a training start: ``nal-tui --preflight`` and the dashboard.

Each check returns a CheckResult (pass / fail / warn / skip, a reason, how to fix it).
Light on purpose (headless, no torch, numpy, soundfile, textual or rich); the two checks
that need the trainer run it in a subprocess, started first, in parallel.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from nal_tui.core.control import command, proc
from nal_tui.preflight.checks_data import check_config, check_data, check_output_dirs
from nal_tui.preflight.checks_env import (
    _Sub,
    check_installation,
    check_models,
    check_resources,
    check_run_state,
    check_trainer,
    verify_command,
)
from nal_tui.preflight.checks_finetune import NAME as NAME_FINETUNE
from nal_tui.preflight.checks_finetune import check_init_from
from nal_tui.preflight.report import SKIP, CheckResult, PreflightReport
from trainer.config.threads import BusyProcess, busy_processes
from trainer.rundir.layout import default_run_dir

# What callers outside the package use; every other name is imported from its module
# (checks_data, checks_env, estimates, report).
__all__ = ["print_report", "run_checks"]


def run_checks(
    config_path: str | os.PathLike[str],
    run_dir: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    build_models: bool = True,
    *,
    nproc: int = 1,
    logs_dir: str | os.PathLike[str] = "logs",
    disk_free: int | None = None,
    mem_available: int | None = None,
    new_branch: bool = False,
    busy: list[BusyProcess] | None = None,
    init_from: str | os.PathLike[str] | None = None,
    init_generator_only: bool = False,
) -> PreflightReport:
    """Run every check; the trainer subprocesses start first and run alongside the rest.

    ``resume``: the checkpoint a resume would load (``latest`` or a path), put through the
    trainer's own load test (``nal-train verify``). ``new_branch``: the start will start over
    from step 0 in a run dir that holds a run (else such a start fails the run-state check,
    as the trainer refuses it). ``init_from``: a fine-tune's source checkpoint, checked
    against the config and the corpus (``init_generator_only``: its generator only). ``busy``: the other processes keeping CPUs busy (None:
    sampled now, leaving out this process, its children and the run's own trainer).
    """
    t0 = time.monotonic()
    base, _ = command.trainer_base_command()
    help_sub = _Sub([*base, "--help"])
    cfg_res, cfg = check_config(config_path)
    model_sub = (
        _Sub([*base, "summary", "--config", str(config_path)])
        if (build_models and cfg is not None)
        else None
    )
    rd = (
        Path(run_dir)
        if run_dir is not None
        else (default_run_dir(cfg.name, logs_dir) if cfg is not None else None)
    )
    verify_sub = (
        _Sub(verify_command(base, rd, resume, config_path if cfg is not None else None))
        if resume is not None and rd is not None and rd.is_dir()
        else None
    )
    no_cfg = "skipped: the configuration did not load"
    checks = [cfg_res]
    checks.append(check_data(cfg, nproc) if cfg is not None else CheckResult("Data", SKIP, no_cfg))
    checks.append(
        check_output_dirs(rd)
        if rd is not None
        else CheckResult("Output directories", SKIP, no_cfg + " (no run directory)")
    )
    checks.append(check_installation())
    checks.append(check_trainer(help_sub))
    counts: dict[str, int] = {}
    if model_sub is not None:
        res, counts = check_models(model_sub)
        checks.append(res)
    else:
        checks.append(
            CheckResult(
                "Model components",
                SKIP,
                # Said without a command-line flag: the dashboard's dialogs show it too.
                "not built in this quick check (the trainer builds them at start; "
                "nal-tui --preflight builds and sizes them)"
                if cfg is not None
                else no_cfg,
            )
        )
    if cfg is not None and rd is not None:
        if busy is None:
            st = proc.trainer_state(rd) if rd.is_dir() else None
            busy = busy_processes(exclude=[st.pid] if st is not None and st.live and st.pid else [])
        checks.append(
            check_resources(
                cfg,
                rd,
                counts or None,
                disk_free=disk_free,
                mem_available=mem_available,
                busy=busy,
                nproc=nproc,
            )  # fmt: skip
        )
    else:
        checks.append(CheckResult("System resources", SKIP, no_cfg))
    if init_from is not None:
        checks.append(
            check_init_from(cfg, init_from, init_generator_only)
            if cfg is not None
            else CheckResult(NAME_FINETUNE, SKIP, no_cfg)
        )
    checks.append(
        check_run_state(rd, resume, new_branch=new_branch, verify=verify_sub)
        if rd is not None
        else CheckResult("Run state", SKIP, no_cfg + " (no run directory)")
    )
    return PreflightReport(
        str(config_path), str(rd) if rd is not None else None, checks, time.monotonic() - t0
    )


def print_report(report: PreflightReport, json_out: bool = False) -> None:
    """Print the report (human lines, or one JSON object)."""
    if json_out:
        print(json.dumps(report.to_dict(), indent=1))
        return
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(enc)
        ascii_only = False
    except (UnicodeEncodeError, LookupError):
        ascii_only = True
    print(f"nal-tui preflight: {report.config_path} -> {report.run_dir or '(no run directory)'}")
    for line in report.lines(ascii_only):
        print(line)
