"""Distributed set-up of a training run: one process, or one per GPU/CPU process under
`torchrun` (NCCL on GPUs, gloo on CPUs), and the stop request of SIGTERM / SIGUSR1 (SLURM's
preemption warning)."""

from __future__ import annotations

import os
import signal

import torch
import torch.distributed as dist

from ..torch_device import resolve_device


class Distributed:
    """The process group of this run (from torchrun's WORLD_SIZE, RANK, LOCAL_RANK; a world of
    one without them) and the collective operations the loop needs."""

    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = resolve_device(device_arg).type == "cuda"
        if use_cuda:
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1:
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_mean(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world).tolist()

    def any(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.world > 1:
            dist.destroy_process_group()


class StopRequest:
    """Remembers a SIGTERM or SIGUSR1; the loop stops at the next step boundary."""

    def __init__(self):
        self.signal = None
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signal = signum
