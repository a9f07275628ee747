"""Process-group set-up for torchrun/DDP, and the device choice; a single process is world 1."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger("nal-train")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                "train.device is 'cuda' but no CUDA device is available "
                "(set train.device: auto or cpu)"
            )
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_from_env(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world <= 1:
        return DistInfo(), device
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, device_id=device if device.type == "cuda" else None
        )
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, backend=backend), device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class StopAgreement:
    """Lets every rank agree, at the same step, that some rank was asked to stop.

    Each step a rank contributes its flag to an asynchronous MAX all-reduce on a CPU (gloo)
    group and reads the previous step's result, so agreement costs no GPU sync and no wait:
    all ranks stop one step after the first signal, at the same step.
    """

    def __init__(self, info: DistInfo) -> None:
        self.info = info
        self._group = dist.new_group(backend="gloo") if info.enabled else None
        self._pending: tuple[torch.Tensor, dist.Work] | None = None

    def __call__(self, flag: bool) -> bool:
        if not self.info.enabled:
            return flag
        agreed = False
        if self._pending is not None:
            t, work = self._pending
            work.wait()
            agreed = bool(t.item())  # a CPU tensor: no device sync
        t = torch.tensor([1.0 if flag else 0.0])
        self._pending = (
            t,
            dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._group, async_op=True),
        )
        return agreed

    def drain(self) -> None:
        """Complete the last collective so no rank leaves one pending at exit."""
        if self._pending is not None:
            self._pending[1].wait()
            self._pending = None


def gather_strings(value: str, info: DistInfo) -> list[str]:
    """Every rank's string (e.g. its device), on every rank."""
    if not info.enabled:
        return [value]
    out: list[str | None] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return [str(v) for v in out]


def broadcast_int(value: int, info: DistInfo, device: torch.device) -> int:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any (a blocking MAX all-reduce).

    For start-up phase boundaries, where every rank must leave together or not at all.
    Runs on a CPU tensor with gloo, or on the rank's GPU with NCCL.
    """
    if not info.enabled:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if info.backend == "nccl" else "cpu"
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
