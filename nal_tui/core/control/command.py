"""The trainer's command line, as nal-tui launches it (one definition)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


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
    base: tuple[list[str], str] | None = None,
    new_branch: bool = False,
    init_from: str | os.PathLike[str] | None = None,
    init_generator_only: bool = False,
) -> tuple[list[str], str]:
    """The trainer's command line and a name for its launcher (``init_from``: a fine-tune
    from that checkpoint, its generator only with ``init_generator_only``)."""
    args = ["train", "--config", str(config_path), "--run-dir", str(run_dir)]
    if resume is not None:
        args += ["--resume", str(resume)]
    elif new_branch:
        args.append("--new-branch")
    if init_from is not None and resume is None:
        args += ["--init-from", str(init_from)]
        if init_generator_only:
            args.append("--init-from-generator-only")
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
    cmd, launcher = base if base is not None else trainer_base_command()
    return [*cmd, *args], launcher
