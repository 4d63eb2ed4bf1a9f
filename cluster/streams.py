"""Driver side: turn prepared Parquet shards into per-rank Ray Datasets, one stream per data source.

A training step draws one micro-batch from every stream (pretraining: plain text, Lending Club rows,
StockNet chart/tweet/price rows; multi-task finetuning: one stream per task) and sums their losses.
Each stream is split into one deterministic dataset per worker rank (`Dataset.split(equal=True)`), so
every rank sees the same number of rows, a resumed run sees the same order, and a worker reads it
with `get_dataset_shard(f"{stream}#{rank}")`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from actors.columns import IMAGE_COLUMNS, SERIES_COLUMNS, TABULAR_COLUMNS, TEXT_COLUMNS
from actors.manifest import MANIFEST

CHUNK_MICRO_BATCHES = 16
"""Micro-batches per chunk that is sorted by length (see actors.collate.length_grouped_batches)."""

TEXT = ["input_ids", "attention_mask"]
assert set(TEXT) <= set(TEXT_COLUMNS)
IMAGE = list(IMAGE_COLUMNS)
TABULAR = list(TABULAR_COLUMNS)
SERIES = list(SERIES_COLUMNS)


@dataclass
class StreamSpec:
    """One source of micro-batches in the training loop (JSON-serialisable for train_loop_config)."""

    name: str
    datasets: list[str]
    """Prepared data sets unioned into this stream."""
    columns: list[str]
    tabular_dataset: str | None = None
    """The data set whose tabular block the rows fill (collate needs it)."""
    head: str | None = None
    """Finetuning: the head the `label` column trains."""
    loss_weight: float = 1.0
    """Finetuning: the factor on this stream's loss in the step's summed loss (finetune.loss_weights)."""
    rows_per_rank: int = 0
    micro_batches_per_epoch: int = 0

    def key(self, rank: int) -> str:
        return f"{self.name}#{rank}"

    def to_dict(self) -> dict:
        return asdict(self)


def micro_batches(rows: int, batch_size: int) -> int:
    """Micro-batches a rank draws from `rows` rows: full chunks, then the remainder."""
    chunk = batch_size * CHUNK_MICRO_BATCHES
    return (rows // chunk) * CHUNK_MICRO_BATCHES + math.ceil((rows % chunk) / batch_size)


def read_manifest(output_dir: Path, dataset: str) -> dict:
    path = Path(output_dir) / dataset / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"{dataset} has not been prepared: {path} is missing. Run `finmm prepare --datasets {dataset}` first."
        )
    return json.loads(path.read_text())


def _modalities(manifest: dict) -> list[str]:
    return list(manifest.get("modalities", []))


def pretrain_streams(pretrain, output_dir: Path) -> list[StreamSpec]:
    """Plain-text data sets share one MLM stream; data sets with other modalities get their own."""
    text_only: list[str] = []
    streams: list[StreamSpec] = []
    wanted = list(dict.fromkeys([*pretrain.text_datasets, *pretrain.tabular_datasets, *pretrain.pair_datasets]))
    for dataset in wanted:
        modalities = _modalities(read_manifest(output_dir, dataset))
        columns = list(TEXT) if dataset in pretrain.text_datasets and "text" in modalities else []
        tabular = dataset in pretrain.tabular_datasets and "tabular" in modalities
        if tabular:
            columns += TABULAR
        if dataset in pretrain.pair_datasets:
            columns += IMAGE if "image" in modalities else []
            columns += SERIES if "series" in modalities else []
        if columns == TEXT:
            text_only.append(dataset)
        elif columns:
            streams.append(StreamSpec(dataset, [dataset], columns, tabular_dataset=dataset if tabular else None))
    if text_only:
        streams.insert(0, StreamSpec("text", text_only, list(TEXT)))
    return streams


def task_stream(task_name: str, head: str, datasets: tuple[str, ...], output_dir: Path,
                only: tuple[str, ...] | None = None) -> StreamSpec:
    """Every model input the task's data sets carry (or only the modalities in `only`), plus the label."""
    columns: list[str] = []
    tabular_dataset = None
    for dataset in datasets:
        modalities = _modalities(read_manifest(output_dir, dataset))
        modalities = [m for m in modalities if only is None or m in only]
        for modality, cols in (("text", TEXT), ("image", IMAGE), ("tabular", TABULAR), ("series", SERIES)):
            if modality in modalities:
                columns += [c for c in cols if c not in columns]
        if "tabular" in modalities:
            tabular_dataset = dataset
    return StreamSpec(task_name, list(datasets), columns + ["label"], tabular_dataset=tabular_dataset, head=head)


def build_rank_datasets(
    stream: StreamSpec, output_dir: Path, split: str, world_size: int, batch_size: int, seed: int,
    materialize_before_shuffle: bool = True,
) -> dict:
    """Read the stream's shards for `split`, shuffle once with `seed`, split equally per rank.

    The read is materialized before the shuffle, as Ray advises: fused into the shuffle's map task, a read
    task's whole output is one block, and Ray packs shard files into read tasks by their size on disk, so
    StockNet's train split (chart pixels compress ~40x: 26 MB of files, ~1 GB in memory) arrived as a single
    993 MiB block. Materialized, the read's output is cut into blocks of at most target_max_block_size.
    `materialize_before_shuffle=False` keeps the fused plan (bench/shuffle_blocks.py compares the two)."""
    import ray.data

    from actors.pipeline import read_prepared

    parts = []
    for dataset in stream.datasets:
        ds = read_prepared(output_dir, dataset, split)
        have = set(ds.schema().names)
        missing = [c for c in stream.columns if c not in have]
        if missing:
            raise ValueError(f"{dataset}/{split} lacks columns {missing}; re-run `finmm prepare --datasets {dataset}`")
        parts.append(ds.select_columns(stream.columns))
    combined = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    if materialize_before_shuffle:
        combined = combined.materialize()
    combined = combined.random_shuffle(seed=seed)
    shards = combined.split(world_size, equal=True)
    stream.rows_per_rank = shards[0].count()
    if stream.rows_per_rank == 0:
        raise ValueError(f"stream {stream.name} has no {split} rows for {world_size} workers")
    stream.micro_batches_per_epoch = micro_batches(stream.rows_per_rank, batch_size)
    assert isinstance(shards[0], ray.data.Dataset)
    return {stream.key(rank): shard for rank, shard in enumerate(shards)}
