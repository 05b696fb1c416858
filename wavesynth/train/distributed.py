"""Process-group set-up for DistributedDataParallel launched by ``torchrun``.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/MASTER_PORT); without them the run is
a single process. The backend is nccl when the process trains on CUDA, gloo otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import WavesynthError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes checkpoints, logs and progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Read the process's place from the ``torchrun`` environment variables."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise WavesynthError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as set by "
                             "torchrun)") from None


def pick_device(spec: str, info: DistInfo) -> torch.device:
    """``auto`` means cuda:LOCAL_RANK when CUDA is available, else cpu; plain ``cuda`` adds LOCAL_RANK."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise WavesynthError(f"device '{spec}' was asked for but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    return device


def init_process_group(info: DistInfo, device: torch.device) -> bool:
    """Join the job's process group if there is more than one process; True if this call created it."""
    if not info.enabled or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size,
                            device_id=device if device.type == "cuda" else None)
    return True


def any_true(flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR of ``flags`` over all processes (the flags themselves when single-process)."""
    if not dist.is_initialized():
        return flags
    tensor = torch.tensor(flags, dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum of ``values`` over all processes, element-wise, in float64."""
    if not dist.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather(obj: Any) -> list[Any]:
    """``obj`` from every process, in rank order."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
