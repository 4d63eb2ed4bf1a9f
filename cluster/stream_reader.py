"""Worker side: draw length-grouped micro-batches from a rank's dataset shard, resumably."""

from __future__ import annotations

from collections.abc import Iterator

from actors.collate import BatchLayout, collate, length_grouped_batches
from cluster.streams import CHUNK_MICRO_BATCHES, StreamSpec


def _columns(rows):
    return rows


class StreamReader:
    """Cycles over a shard epoch after epoch. `position` = [epoch, micro-batches drawn this epoch];
    a reader built from a saved position continues with exactly the next micro-batch."""

    def __init__(self, shard, spec: StreamSpec, layout: BatchLayout, batch_size: int, seed: int,
                 position: list[int] | None = None):
        self.shard, self.spec, self.layout = shard, spec, layout
        self.batch_size, self.seed = batch_size, seed
        self.epoch, self.drawn = position or [0, 0]
        self._iter = self._epoch_batches(self.epoch, skip=self.drawn)

    @property
    def position(self) -> list[int]:
        return [self.epoch, self.drawn]

    def _epoch_batches(self, epoch: int, skip: int) -> Iterator[dict]:
        chunk_rows = self.batch_size * CHUNK_MICRO_BATCHES
        index = 0
        chunks = self.shard.iter_torch_batches(batch_size=chunk_rows, collate_fn=_columns, prefetch_batches=1)
        for chunk_no, rows in enumerate(chunks):
            groups = length_grouped_batches(rows, self.batch_size, seed=self.seed + 7919 * epoch + chunk_no)
            for group in groups:
                index += 1
                if index <= skip:
                    continue
                yield group

    def next(self) -> dict:
        """The next micro-batch in the batch contract (plus "labels" when the stream has labels)."""
        try:
            rows = next(self._iter)
        except StopIteration:
            self.epoch, self.drawn = self.epoch + 1, 0
            self._iter = self._epoch_batches(self.epoch, skip=0)
            rows = next(self._iter)
        self.drawn += 1
        return collate(rows, self.layout, self.spec.tabular_dataset)


def iterate_once(shard, spec: StreamSpec, layout: BatchLayout, batch_size: int) -> Iterator[dict]:
    """One pass in stored order (for evaluation)."""
    for rows in shard.iter_torch_batches(batch_size=batch_size, collate_fn=_columns, prefetch_batches=1):
        yield collate(rows, layout, spec.tabular_dataset)
