"""torch.distributed helpers for training: set-up from ``torchrun`` variables, device choice, small collectives.

``torchrun`` (``python -m torch.distributed.run``) starts one process per GPU (or per CPU slot) and sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`setup` reads them,
joins the process group (NCCL on CUDA, Gloo on the CPU) and picks ``cuda:LOCAL_RANK``. Without those
variables everything runs in one process and every helper here is a no-op.
"""

from __future__ import annotations

import importlib
import os
import pickle
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from pconv_kit.core.device import resolve_device
from pconv_kit.errors import ConfigError

__all__ = ["DistContext", "setup", "resolve_device"]


@dataclass
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes.
        local_rank: rank on this machine (picks the GPU).
        device: the device this process trains on.
        owns_group: whether :func:`setup` created the process group (and :meth:`close` destroys it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    # -------------------------------------------------------------- collectives (no-ops in one process)
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def barrier(self) -> None:
        """Wait for every process."""
        if self.enabled:
            dist.barrier()

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """Mean of ``tensor`` over processes (in place on a copy)."""
        if not self.enabled:
            return tensor
        t = tensor.detach().to(self._comm_device(), dtype=torch.float64).clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return (t / self.world_size).to(tensor.device, tensor.dtype)

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any of them."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (pickled; use for small Python objects and state dicts)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Copy rank 0's buffers (e.g. BatchNorm running statistics) of ``module`` to every rank."""
        if not self.enabled:
            return
        for buf in module.buffers():
            if self._comm_device().type == buf.device.type:
                dist.broadcast(buf.data, src=0)
            else:
                tmp = buf.data.to(self._comm_device())
                dist.broadcast(tmp, src=0)
                buf.data.copy_(tmp)

    def run_on_main(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on rank 0 and give its result to every rank; an error on rank 0 is raised everywhere.

        Used for file-system work (creating the run directory, reading a checkpoint) whose failure must not
        leave the other ranks waiting in a collective.
        """
        result: Any = None
        error: BaseException | None = None
        if self.is_main:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # re-raised below, on every rank
                error = exc
        if not self.enabled:
            if error is not None:
                raise error
            return result
        try:
            payload = pickle.dumps(error)
        except Exception:  # an exception that cannot be pickled: send its text
            payload = pickle.dumps(ConfigError(str(error)))
        shared = self.broadcast((payload if error is not None else None, result if error is None else None))
        if shared[0] is not None:
            raise pickle.loads(shared[0])
        return shared[1]

    def close(self) -> None:
        """Leave the process group if :func:`setup` joined it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def setup(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join the process group that ``torchrun`` describes (if any) and pick this process's device.

    Reuses a process group that the caller already initialised. NCCL is used for CUDA devices, Gloo for
    the CPU. ``torch._dynamo`` is imported before the group is created: imported while a group exists
    (DistributedDataParallel does on first use), it keeps that group alive after ``destroy_process_group``
    (PyTorch 2.13), and the group's Gloo threads then run until the interpreter exits, where the process can
    abort ("terminate called without an active exception") after a run that succeeded. A caller that creates
    the group itself should import it first too.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        timeout_s: collective timeout.

    Returns:
        The :class:`DistContext` of this process.

    Example:
        >>> ctx = setup("cpu")  # outside torchrun: one process
        >>> ctx.world_size, ctx.is_main, ctx.device
        (1, True, device(type='cpu'))
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count() or 1)))
        return DistContext(rank, world, local_rank, resolve_device(device, local_rank=local_rank), owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistContext(0, 1, 0, resolve_device(device, local_rank=0))
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank=local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    importlib.import_module("torch._dynamo")  # before the group exists: see the docstring

    kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(seconds=timeout_s)}
    if dev.type == "cuda":
        kwargs["device_id"] = dev
    try:
        dist.init_process_group(**kwargs)
    except TypeError:  # older PyTorch without device_id
        kwargs.pop("device_id", None)
        dist.init_process_group(**kwargs)
    return DistContext(rank, world, local_rank, dev, owns_group=True)
