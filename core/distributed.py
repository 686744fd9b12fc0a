"""The few collectives the trainer needs under ``parallel = "ddp"``; each is a no-op in a single process.

Under DistributedDataParallel every rank holds the same weights (DDP broadcasts them at wrap time and all-reduces
the gradients of every step) and draws the same batch order and augmentation (same seeds), so all ranks make the
same decisions without talking more than this: each rank trains on its share of every global batch
(:func:`shard`), BatchNorm buffers come from rank 0 before each evaluation (:func:`broadcast_buffers`), each rank
scores its share of the validation rows and all ranks receive all of them (:func:`gather_shards`), and logged
numbers are averaged over ranks (:func:`mean_over_ranks`).

Sharp edge: BatchNorm normalises each rank's share with that share's statistics (batch/N images). SyncBatchNorm
would restore whole-batch statistics but needs CUDA and costs an all-reduce per BatchNorm layer.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of ranks); (0, 1) outside an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(batch_len: int, rank: int, world: int) -> slice:
    """This rank's rows of a global batch of ``batch_len``: ``torch.tensor_split`` sizes (the first ranks get one
    more row when ``batch_len % world`` != 0)."""
    base, extra = divmod(batch_len, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def gather_shards(part: torch.Tensor, total: int) -> torch.Tensor:
    """Every rank's ``part`` (rank r holds rows ``shard(total, r, world)``), concatenated in rank order: the whole
    (total, ...) tensor on every rank. Returns ``part`` itself in a single process; every rank must call it."""
    rank, world = rank_and_world()
    if world == 1:
        return part
    sizes = [shard(total, r, world) for r in range(world)]
    assert len(part) == sizes[rank].stop - sizes[rank].start, (len(part), sizes[rank])
    padded = part.new_zeros((sizes[0].stop - sizes[0].start, *part.shape[1:]))  # all_gather wants equal shapes
    padded[:len(part)] = part
    pieces = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(pieces, padded)
    return torch.cat([piece[:rows.stop - rows.start] for piece, rows in zip(pieces, sizes, strict=True)])


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so that evaluation agrees across ranks.

    DDP broadcasts buffers at the start of each training forward, so after the last step each rank still holds its
    own update of them.
    """
    if rank_and_world()[1] > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The average of ``value`` over the ranks (itself in a single process); every rank must call it."""
    world = rank_and_world()[1]
    if world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / world


def ranks_agree(array: np.ndarray) -> bool:
    """Whether ``array`` is bit-identical on every rank (compares sha256 digests; every rank must call it)."""
    world = rank_and_world()[1]
    if world == 1:
        return True
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    digests: list[str] = [""] * world
    dist.all_gather_object(digests, digest)
    return len(set(digests)) == 1
