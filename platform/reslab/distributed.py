"""Data parallelism: where this process stands in a group of workers training one model together.

Each worker trains on its own share of every global batch; gradients are averaged by DDP, and the
statistics a report needs (errors, losses, counts) are summed over the group before they are read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """This worker's rank in a data-parallel group of `size` workers (rank 0 of 1 when alone)."""

    rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> Shard:
        """The group torch.distributed was initialised with (by Ray Train), else a group of one."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_chief(self) -> bool:
        """Rank 0 writes checkpoints for the group."""
        return self.rank == 0

    def take(self, items: torch.Tensor) -> torch.Tensor:
        """This worker's share of a batch: every size-th item from its rank on."""
        return items if self.size == 1 else items[self.rank :: self.size]

    def owns(self, index: int) -> bool:
        """Whether the index-th evaluation batch is this worker's to evaluate."""
        return index % self.size == self.rank

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the group (unchanged for a group of one)."""
        if self.size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor
