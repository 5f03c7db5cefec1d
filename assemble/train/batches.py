"""Real batches: a resumable, seeded order over an in-memory dataset, sharded across processes."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class BatchOrder:
    """Batches of indices from a fresh seeded permutation each epoch.

    The state is just ``(epoch, position)``, so a resumed run continues with exactly the batches an
    uninterrupted run would have seen. With several processes the global batch is cut into one shard per
    rank (``indices[rank::world]``), so together they see what one process would.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        if n <= 0:
            raise ValueError("the dataset is empty")
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.position = 0, 0
        self._perm: Tensor | None = None

    def _permutation(self) -> Tensor:
        if self._perm is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = torch.randperm(self.n, generator=g)
        return self._perm

    def next(self, batch: int) -> Tensor:
        """The next global batch of ``batch`` indices, this rank's shard of it."""
        out = []
        need = batch
        while need:
            perm = self._permutation()
            take = perm[self.position: self.position + need]
            out.append(take)
            need -= len(take)
            self.position += len(take)
            if self.position >= self.n:
                self.epoch, self.position, self._perm = self.epoch + 1, 0, None
        return torch.cat(out)[self.rank:: self.world]

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.position, self._perm = int(state["epoch"]), int(state["position"]), None


def collate(dataset: Any, indices: Tensor) -> dict[str, Tensor]:
    """A batch of samples: ``dataset.batch`` when the dataset has it (one lookup per field), else stacked items."""
    if hasattr(dataset, "batch"):
        return dataset.batch(indices)
    items = [dataset[int(i)] for i in indices]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
