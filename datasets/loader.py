"""A DataLoader that Lightning can checkpoint and resume mid-epoch, bit for bit.

Lightning saves and restores a training DataLoader that has ``state_dict``/``load_state_dict``.
:class:`ResumableDataLoader` keeps its shuffling and worker seeding independent of the global RNG
(one generator per epoch, seeded from ``seed`` and the epoch), records how many batches of the
current epoch it has handed out, and on resume skips exactly those. The sampler yields
``(index, epoch)`` keys, so a dataset can draw its augmentation from ``(seed, epoch, index)`` and
stay identical whichever worker process serves the sample.

Under data-parallel training (Lightning's DDP, with ``use_distributed_sampler=False`` so that the
loader stays resumable) each process reads only its own share of every epoch; see
:class:`EpochKeyedSampler`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

SampleKey = tuple[int, int]
"""``(index, epoch)``: what :class:`EpochKeyedSampler` yields."""


class EpochKeyedSampler(Sampler[SampleKey]):
    """Yields ``(index, epoch)`` in an order fixed by ``(seed, epoch)``; can skip a prefix.

    With several data-parallel replicas every replica draws the same order of the epoch, drops
    the tail that does not divide evenly, and keeps every ``num_replicas``-th key starting at
    ``rank``. The shares are disjoint, equally long and deterministic, and batch ``k`` of all
    replicas together holds the same samples as batch ``k`` of a single process whose batch is
    ``num_replicas`` times larger.

    Args:
        length: number of samples in the dataset.
        shuffle: permute the samples every epoch (from ``seed`` and the epoch).
        seed: fixes the order of every epoch.
        num_replicas: data-parallel processes sharing the epoch (``None``: the world size of the
            initialised default ``torch.distributed`` process group, else 1).
        rank: this process's replica index (``None``: its rank in that group, else 0).

    Raises:
        ValueError: ``rank`` is not in ``[0, num_replicas)``.
    """

    def __init__(
        self,
        length: int,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if num_replicas is None:
            num_replicas = torch.distributed.get_world_size() if distributed else 1
        if rank is None:
            rank = torch.distributed.get_rank() if distributed else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"replica rank {rank} of {num_replicas} is invalid: pass num_replicas >= 1 and "
                "0 <= rank < num_replicas (or leave both None to read them from torch.distributed)"
            )
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.skip = 0

    def __iter__(self) -> Iterator[SampleKey]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        share = order[self.rank : len(self) * self.num_replicas : self.num_replicas]
        skip, self.skip = self.skip, 0
        epoch = self.epoch
        for index in share[skip:]:
            yield index, epoch

    def __len__(self) -> int:
        """Samples of one epoch that this replica yields."""
        return self.length // self.num_replicas


class ResumableDataLoader(DataLoader):
    """DataLoader over a dataset indexed by ``(index, epoch)`` keys, resumable mid-epoch.

    Args:
        dataset: a map-style dataset whose ``__getitem__`` accepts ``(index, epoch)``.
        batch_size: samples per batch.
        shuffle: reshuffle every epoch (deterministically from ``seed``).
        seed: fixes the order of every epoch and the workers' seeds.
        num_replicas: data-parallel processes sharing each epoch (``None``: from
            ``torch.distributed`` when initialised, else 1); see :class:`EpochKeyedSampler`.
        rank: this process's replica index (``None``: likewise, else 0).
        **kwargs: passed to :class:`torch.utils.data.DataLoader` (``num_workers``, ...).
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        batch_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(dataset, Sized):
            raise TypeError("ResumableDataLoader needs a map-style dataset with a length")
        self._keyed_sampler = EpochKeyedSampler(len(dataset), shuffle, seed, num_replicas, rank)
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=self._keyed_sampler,
            generator=torch.Generator().manual_seed(seed),
            **kwargs,
        )
        self._seed = seed
        self._next_epoch = 0
        self._epoch = 0
        self._position = 0
        self._resume_position = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch, start = self._next_epoch, self._resume_position
        self._resume_position = 0
        self._keyed_sampler.epoch = epoch
        self._keyed_sampler.skip = start * (self.batch_size or 1)
        assert self.generator is not None
        self.generator.manual_seed(self._seed * 1_000_003 + epoch)
        self._epoch, self._position, self._next_epoch = epoch, start, epoch + 1
        return self._counting(super().__iter__())

    def _counting(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Epoch being served and batches of it already handed out."""
        return {"epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue epoch ``state['epoch']`` after ``state['position']`` batches."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if position >= len(self):
            epoch, position = epoch + 1, 0
        self._next_epoch, self._resume_position = epoch, position
