"""Runs split over processes: `accelerate launch -m pare_bench run SUITE` or `torchrun -m pare_bench run SUITE`.

Generation, the expensive phase, is split: every rank takes every `world`-th missing work item and appends its
records to its own shard (`records.rank<r>.jsonl`, so no two processes write one file). After a barrier, rank
0 merges the shards into `records.jsonl` and alone runs the phases that must not be split or that are cheap:
latency (timed on an otherwise idle machine), metrics, FID, VBench, the FLOPs cross-check and the report.
Recipe training runs on rank 0 first; the other ranks then load its cached artifacts.

The process group comes from `accelerate.PartialState` (gloo on CPU, NCCL on GPUs), which reads the
environment both launchers set (RANK, WORLD_SIZE, MASTER_ADDR, ...). One process needs none of it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    state: object | None = None  # accelerate.PartialState when world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    @contextmanager
    def main_first(self):
        """Rank 0 runs the block first (trains and caches artifacts); the others run it after."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def part(self, items: list) -> list:
        return items[self.rank :: self.world]


def ranks() -> Ranks:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Ranks(state.process_index, state.num_processes, state)
