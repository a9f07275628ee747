"""How many trainer processes a start may ask for: the one rule behind ``RunSession.start``
(and so ``nal-tui start|resume --nproc``) and the start/resume dialogs' processes field.

Allowed: 1 .. ``limit``, where ``limit`` is

- the CUDA devices the trainer will see, when the config trains on CUDA (``train.device``
  ``cuda``, or ``auto``) and there are any: torchrun gives each rank its own GPU
  (``cuda:LOCAL_RANK``), so one rank more than there are GPUs fails at start-up;
- else the usable CPUs (affinity, cgroup cpusets): a CPU rank needs a core of its own,
  more ranks only take cores from each other (trainer/config/threads.py);
- and never more than ``MAX_NPROC``, whatever the machine says.

GPUs are counted without torch: ``CUDA_VISIBLE_DEVICES`` in the trainer's environment when
set (as CUDA reads it: up to the first invalid entry), else the driver's
``/proc/driver/nvidia/gpus``, else ``nvidia-smi -L`` (asked once per process).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainer.config.threads import usable_cpus

MAX_NPROC = 64  # one machine's ranks; a larger number is a typo, not a plan
GPU_DRIVER_DIR = Path("/proc/driver/nvidia/gpus")
NVIDIA_SMI_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class NprocLimit:
    """The most processes a start may use here, and why (for the messages)."""

    most: int
    why: str  # "2 CUDA devices visible", "8 usable CPUs", ...

    def refusal(self, n: int) -> str | None:
        """Why ``n`` processes are not allowed (one line naming the limit), or None."""
        if n < 1:
            return f"processes must be a whole number from 1 to {self.most}"
        if n > self.most:
            return (
                f"{n:,} processes is more than this machine allows: at most {self.most} "
                f"({self.why})"
            )
        return None


@functools.cache
def driver_gpus() -> int:
    """NVIDIA GPUs the driver knows (0 without a driver): /proc first, nvidia-smi -L else."""
    try:
        return sum(1 for p in GPU_DRIVER_DIR.iterdir() if p.is_dir())
    except OSError:
        pass
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def visible_gpus(env: Mapping[str, str] | None = None, driver: int | None = None) -> int:
    """CUDA devices a process with ``env`` sees: ``CUDA_VISIBLE_DEVICES`` counted as CUDA
    reads it (entries up to the first invalid one, e.g. ``-1``), at most ``driver``."""
    env = os.environ if env is None else env
    have = driver_gpus() if driver is None else driver
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return have
    n = 0
    for entry in cvd.split(","):
        e = entry.strip()
        if not e or (e.lstrip("-").isdigit() and int(e) < 0):
            break
        n += 1
    return min(n, have)


def nproc_limit(
    device: str, env: Mapping[str, str] | None = None, *, gpus: int | None = None,
    cpus: int | None = None,
) -> NprocLimit:  # fmt: skip
    """The limit for a run on ``device`` (``train.device``: auto, cpu or cuda)."""
    if device != "cpu":
        g = visible_gpus(env) if gpus is None else gpus
        if g > 0:
            most = min(g, MAX_NPROC)
            return NprocLimit(most, f"one per GPU: {g} CUDA device(s) visible")
    c = usable_cpus() if cpus is None else cpus
    where = "no GPU visible, " if device == "cuda" else ""
    if c > MAX_NPROC:
        return NprocLimit(MAX_NPROC, f"{where}at most {MAX_NPROC} on one machine")
    return NprocLimit(max(1, c), f"{where}one per CPU: {c} usable CPU(s)")


def config_device(config_path: str | os.PathLike[str]) -> str:
    """The config's ``train.device`` (``auto`` when it cannot be read: the start reports
    the config's own problem)."""
    # Loading a config pulls in yaml and the schema: only when a start is asked for.
    from trainer.config.schema import ConfigError
    from trainer.config.yamlfile import load

    try:
        return load(config_path).train.device
    except (ConfigError, OSError):
        return "auto"


def limit_for(
    config_path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> NprocLimit:
    """The limit for a start of ``config_path`` by a trainer with ``env`` (None: ours)."""
    return nproc_limit(config_device(config_path), env)
