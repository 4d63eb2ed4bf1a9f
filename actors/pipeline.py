"""`prepare`: raw data sets -> model-ready Parquet shards, through one Ray Data actor pool per modality.

For each data set:
  1. `load_source` reads the raw files (rows + loader rejects): a built-in loader, or the generic one of a data
     set declared in config (`data.declared`; those are read first, so a bad declaration fails at once).
  2. State is fitted on the train split: the tokenizer once for all text data sets (see below), the
     tabular state and the series standardisation (`SeriesState`) per data set.
  3. `ray.data.from_arrow(rows)` (the loader's declared schema), then `map_batches` once per modality the
     data set has, each with its own `ActorPoolStrategy` pool: tabular -> text -> series -> image. The
     streaming executor runs the pools side by side, each on different batches.
  4. Rows are partitioned by outcome (their split, or rejected) and written with `write_parquet` into
     `<output_dir>/<dataset>/<split>/`; rejected rows (loader's and actors') go to `rejected.parquet`, and
     `manifest.json` records counts, schema, fitted state, source checksums and settings.
  5. Rows read must equal rows written + rejected + sliced out, or `ReconcileError` is raised and the
     previous output, if any, is left untouched (everything is written to a staging folder first).
  6. The staging folder replaces `<output_dir>/<dataset>/` in one atomic step (renameat2 RENAME_EXCHANGE,
     else rename-aside then rename-in), and `tokenizer.json` is written to a temporary name and renamed. A
     write that finds the disk full raises `PrepareDiskFullError` naming the path, removes the staging folder
     and leaves the previous prepared data as it was.

Tokenizer vocabulary: the CJK extension is counted over the train splits of *every* built-in text data set
(not only those being prepared), so `<output_dir>/tokenizer.json` and the token ids in the shards are the
same whichever subset `finmm prepare --datasets` runs. Pass `vocab_datasets` to narrow it (tests do). Once
built, it is kept: a later prepare, of any data set, declared ones included, tokenises with it and records its
version (`actors.versions`) in the manifest; `rebuild_tokenizer=True` (`finmm prepare --rebuild-tokenizer`)
builds it again.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from tokenizers import Tokenizer

from actors.columns import MODALITY_COLUMNS, REJECT
from actors.image import ImagePreprocessor
from actors.manifest import (
    REJECTED,
    REJECTED_SCHEMA,
    TOKENIZER,
    PrepareSummary,
    ReconcileError,
    actor_rejects,
    loader_rejects,
    read_manifest,
    reconcile,
    schema_to_json,
    sha256_file,
    write_manifest,
)
from actors.series import N_FEATURES, SeriesPreprocessor, SeriesState
from actors.settings import DataSection
from actors.tabular import TabularPreprocessor, TabularState, feature_columns
from actors.text import TextPreprocessor, base_tokenizer_path, build_tokenizer, configure, load_tokenizer, unk_stats
from actors.versions import (
    BASE,
    BUILT,
    TOKENIZER_VERSION_FILE,
    manifest_tokenizer_version,
    tabular_version,
    tokenizer_record,
    write_tokenizer_record,
)

__all__ = ["PrepareDiskFullError", "PrepareSummary", "ReconcileError", "prepare", "read_manifest", "read_prepared",
           "text_corpora"]

MODALITY_ORDER = ("tabular", "text", "series", "image")
"""Stage order: cheap stages first, so the image pool (the heaviest) sees batches last."""
ACTORS: dict[str, type] = {
    "text": TextPreprocessor,
    "image": ImagePreprocessor,
    "tabular": TabularPreprocessor,
    "series": SeriesPreprocessor,
}
CONSUMES = {"image": "image", "series": "series"}
"""Raw input columns a stage drops once it has turned them into model columns."""
PART = "out_partition"
REJECTED_PART = "rejected__"
ProgressFn = Callable[[str, str], None]


# ------------------------------------------------------------------------------------ Ray Data stages


class _Stage:
    """One modality's actor inside Ray Data: preprocess a pandas batch, then cast to the stage's schema
    so that every block (and every Parquet file) of a data set has identical column types."""

    def __init__(self, modality: str, kwargs: dict[str, Any], schema: pa.Schema):
        self.actor = ACTORS[modality](**kwargs)
        self.schema = schema

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        out = self.actor(batch)
        table = pa.Table.from_pandas(out[self.schema.names], schema=self.schema, preserve_index=False)
        return table.replace_schema_metadata(None)  # no pandas metadata: shards read the same anywhere


def _partition(table: pa.Table) -> pa.Table:
    """Add the output partition: the row's split, or REJECTED_PART when an actor rejected it."""
    part = pc.if_else(pc.is_null(table[REJECT]), table["split"], pa.scalar(REJECTED_PART))
    return table.append_column(PART, part)


def _stage_schema(schema: pa.Schema, modality: str) -> pa.Schema:
    """The schema after `modality`'s stage: its consumed input dropped, its columns and reject_reason added."""
    fields = [f for f in schema if f.name != CONSUMES.get(modality)]
    names = {f.name for f in fields}
    fields += [pa.field(n, t) for n, t in MODALITY_COLUMNS[modality].items() if n not in names]
    if REJECT not in names:
        fields.append(pa.field(REJECT, pa.string()))
    return pa.schema(fields)


def _chunks(table: pa.Table, rows: int) -> list[pa.Table]:
    return [table.slice(i, rows) for i in range(0, max(len(table), 1), rows)]


# ------------------------------------------------------------------------------------- fitted state


def text_corpora() -> list[str]:
    """Every built-in data set with a text modality: the default corpora of the CJK vocabulary. Declared data
    sets are not among them, so declaring one never changes the token ids of what was prepared before."""
    from actors.sources import SOURCES

    return [name for name, spec in SOURCES.items() if "text" in spec.modalities]


def _train_texts(rows: pd.DataFrame) -> list[str]:
    if "text" not in rows.columns:
        return []
    return [t for t in rows.loc[rows["split"] == "train", "text"].tolist() if isinstance(t, str)]


def _fit_tabular(rows: pd.DataFrame, settings: DataSection) -> TabularState:
    numeric, categorical = feature_columns(rows.columns)
    train = rows[rows["split"] == "train"]
    fitted_on = "train"
    if train.empty:  # german_credit: five CV folds, no train split
        train = rows
        fitted_on = "all folds (no train split; label-free mean/std/vocabulary — refit per fold from num__/cat__)"
    return TabularState.fit(train, numeric, categorical, settings, fitted_on=fitted_on)


def _fit_series(rows: pd.DataFrame, settings: DataSection) -> SeriesState:
    """Per-channel mean/std of the day features over the real days of the train rows' windows, computed here
    on the driver with `series_from_bars` (the actor's own function); no train rows: the identity."""
    train = rows.loc[rows["split"] == "train", "series"] if "series" in rows.columns else []
    return SeriesState.fit(train, settings, fitted_on="train")


TEXT_INFO_KEYS = ("base_vocab_size", "added_tokens", "vocab_size", "source", "cjk_min_frequency", "added_chars")


def _tokenizer_for(settings, names, specs, out_root: Path, table, tables, report, vocab_datasets,
                   rebuild: bool):
    """The tokenizer of this prepare: -> (tokenizer, base tokenizer, text_info, record of tokenizer.json).

    A tokenizer.json already in `out_root` is **kept** (unless `rebuild`, or it is only the base tokenizer written
    for tabular-only data), whatever data sets are declared or prepared now: its vocabulary, and so the token ids
    of every shard and bundle made from it, never change behind a user's back. A built one is counted over the
    train text of `vocab_datasets` (default `text_corpora()`); rebuilding reports the prepared data sets it leaves
    on the old version (training and evaluation refuse them until they are prepared again)."""
    existing = tokenizer_record(out_root)
    if not any("text" in specs[n].modalities for n in names):
        if existing is None:
            # tabular-only data (German Credit) still trains a model that needs a vocabulary: the base one; a
            # later prepare of a text data set replaces it (these shards hold no token ids, so nothing goes stale)
            base = configure(Tokenizer.from_file(str(base_tokenizer_path(settings.text))), settings.text.max_length)
            _save_tokenizer(base, out_root / TOKENIZER)
            existing = _record_tokenizer(out_root, BASE, info={"source": str(base_tokenizer_path(settings.text))})
        return None, None, None, existing
    base_tokenizer = configure(Tokenizer.from_file(str(base_tokenizer_path(settings.text))), settings.text.max_length)
    if existing is not None and existing["kind"] != BASE and not rebuild:
        tokenizer = load_tokenizer(out_root / TOKENIZER, settings.text.max_length)
        text_info = {k: existing[k] for k in TEXT_INFO_KEYS if k in existing}
        text_info.setdefault("base_vocab_size", base_tokenizer.get_vocab_size(with_added_tokens=True))
        text_info.setdefault("vocab_size", tokenizer.get_vocab_size(with_added_tokens=True))
        text_info.setdefault("added_tokens", text_info["vocab_size"] - text_info["base_vocab_size"])
        report("tokenizer", f"kept {existing['version']} ({existing['kind']}; `--rebuild-tokenizer` to rebuild)")
        corpora, n_texts, record = existing.get("corpora", []), existing.get("train_texts"), existing
    else:
        corpora = list(vocab_datasets) if vocab_datasets is not None else text_corpora()
        train_texts = [t for n in corpora for t in _train_texts(table(n).rows)]
        report("tokenizer", "build")
        tokenizer, text_info = build_tokenizer(settings, train_texts)
        for n in corpora:
            if n not in names:
                tables.pop(n, None)  # loaded only for the vocabulary
                report(n, "train text read for the vocabulary (not prepared)")
                report(n, "done")
        _save_tokenizer(tokenizer, out_root / TOKENIZER)
        n_texts = len(train_texts)
        record = _record_tokenizer(out_root, BUILT, corpora, info=text_info | {"train_texts": n_texts})
        if existing is not None and existing["version"] != record["version"]:
            stale = _stale(out_root, names, record["version"])
            if stale:
                report("tokenizer", f"rebuilt {existing['version']} -> {record['version']}: re-prepare "
                                    f"{', '.join(stale)} (prepared with the old one)")
    text_info |= {
        "corpora": corpora,
        "train_texts": n_texts,
        "path": str(out_root / TOKENIZER),
        "sha256": sha256_file(out_root / TOKENIZER),
        "version": record["version"],
    }
    return tokenizer, base_tokenizer, text_info, record


def _stale(out_root: Path, preparing: Sequence[str], version: str) -> list[str]:
    """Prepared text data sets, other than those being prepared, whose token ids are not of `version`."""
    stale = []
    for path in sorted(out_root.glob("*/manifest.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        name = path.parent.name
        if (name not in preparing and "text" in manifest.get("modalities", [])
                and manifest_tokenizer_version(out_root, manifest) != version):
            stale.append(name)
    return stale


def _stage_kwargs(modality: str, spec, settings: DataSection, tokenizer, tab_state, series_state) -> dict[str, Any]:
    if modality == "text":
        required = tuple(spec.modalities) == ("text",)  # otherwise empty text = modality absent
        return {"tokenizer_json": tokenizer.to_str(), "max_length": settings.text.max_length, "required": required}
    if modality == "image":
        return {"settings": settings.image.model_dump(mode="json")}
    if modality == "series":
        return {"state_json": series_state.to_json()}
    return {"state_json": tab_state.to_json()}


# ------------------------------------------------------------------------------- safe writes, full disk


class PrepareDiskFullError(OSError):
    """No space left on the device while `prepare` wrote; the message names the path, and the previous
    prepared data are left as they were."""


def _is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain (Ray wraps a task's OSError; pyarrow's may carry only the message)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(exc):
            return True
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return False


def _disk_full(path: Path, previous: Path) -> PrepareDiskFullError:
    kept = f"the previous prepared data in {previous} are untouched" if previous.exists() else "nothing was replaced"
    return PrepareDiskFullError(
        errno.ENOSPC, f"no space left on device writing {path}; free space or point data.output_dir elsewhere "
                      f"({kept})")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2 RENAME_EXCHANGE); False where not supported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _replace_folder(staging: Path, final: Path) -> None:
    """Put `staging` in place of `final`: readers see the whole old folder or the whole new one."""
    if final.exists() and _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the previous data
        return
    aside = final.with_name(f".{final.name}.previous")
    shutil.rmtree(aside, ignore_errors=True)
    if final.exists():
        final.rename(aside)  # the window between these two renames is the only one without `final`
    staging.rename(final)
    shutil.rmtree(aside, ignore_errors=True)


def _record_tokenizer(out_root: Path, kind: str, corpora: Sequence[str] = (), info: dict | None = None) -> dict:
    """`write_tokenizer_record`, with a full disk reported like every other write of `prepare` (the record is
    written through a temporary file, so the previous one stays)."""
    try:
        return write_tokenizer_record(out_root, kind, corpora, info=info)
    except Exception as exc:
        (out_root / (TOKENIZER_VERSION_FILE + ".partial")).unlink(missing_ok=True)
        if _is_disk_full(exc):
            raise PrepareDiskFullError(
                errno.ENOSPC, f"no space left on device writing {out_root / TOKENIZER_VERSION_FILE}; free space or "
                              f"point data.output_dir elsewhere, then prepare again (no data set was replaced; "
                              f"training checks tokenizer.json against each prepared data set's manifest, so "
                              f"none trains on token ids of another vocabulary)") from exc
        raise


def _save_tokenizer(tokenizer: Tokenizer, path: Path) -> None:
    """Write `tokenizer.json` through a temporary file and rename it (a full disk leaves the old one)."""
    tmp = path.with_name(path.name + ".partial")
    try:
        tokenizer.save(str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        if _is_disk_full(exc):
            raise _disk_full(path, path) from exc
        raise
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------- progress


def _progress_fn(progress) -> ProgressFn:
    """Accept None, a callback `f(dataset, stage)`, or a `rich.progress.Progress`."""
    if progress is None:
        return lambda dataset, stage: None
    if hasattr(progress, "add_task"):
        tasks: dict[str, Any] = {}

        def update(dataset: str, stage: str) -> None:
            if dataset not in tasks:
                tasks[dataset] = progress.add_task(dataset, total=None)
            progress.update(tasks[dataset], description=f"{dataset}: {stage}")
            if stage == "done":
                progress.update(tasks[dataset], total=1, completed=1)

        return update
    return progress


# -------------------------------------------------------------------------------------------- prepare


def prepare(
    settings: DataSection,
    datasets: Sequence[str] | None = None,
    progress: ProgressFn | Any | None = None,
    *,
    vocab_datasets: Sequence[str] | None = None,
    rebuild_tokenizer: bool = False,
) -> list[PrepareSummary]:
    """Prepare `datasets` (default `settings.datasets`) into `settings.output_dir`; one summary each.

    Runs on the current Ray cluster (Ray Data starts a local one if none is initialised). Raises
    `actors.sources.DataError` for unreadable raw data and `ReconcileError` if rows went missing.
    A tokenizer already in `output_dir` is kept (see `_tokenizer_for`); `rebuild_tokenizer=True` builds it again.
    """
    from actors.sources import load_source, source_specs

    specs = source_specs(settings)
    names = list(datasets) if datasets is not None else list(settings.datasets)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"unknown data set(s) {unknown}; known: {list(specs)}")
    report = _progress_fn(progress)
    out_root = Path(settings.output_dir)
    out_root.mkdir(parents=True, exist_ok=True)

    tables: dict[str, Any] = {}

    def table(name: str):
        if name not in tables:
            report(name, "load")
            tables[name] = load_source(name, settings)
        return tables[name]

    for name in names:
        if name in settings.declared:
            table(name)  # a declaration that does not fit its files fails before the vocabulary is read

    tokenizer, base_tokenizer, text_info, record = _tokenizer_for(
        settings, names, specs, out_root, table, tables, report, vocab_datasets, rebuild_tokenizer)

    summaries = []
    for name in names:
        summaries.append(
            _prepare_one(name, table(name), specs[name], settings, tokenizer, base_tokenizer, text_info, report,
                         record)
        )
        tables.pop(name, None)  # free the raw rows once written
    return summaries


def _prepare_one(name, source, spec, settings, tokenizer, base_tokenizer, text_info, report,
                 record) -> PrepareSummary:
    final = Path(settings.output_dir) / name
    staging = Path(settings.output_dir) / f".{name}.partial"
    writing = [staging]  # the path being written, for the disk-full message
    try:
        return _write_one(name, source, spec, settings, tokenizer, base_tokenizer, text_info, report,
                          final, staging, writing, record)
    except Exception as exc:
        if not _is_disk_full(exc):
            raise
        shutil.rmtree(staging, ignore_errors=True)  # give the space back; `final` was never touched
        raise _disk_full(writing[-1], final) from exc


def _write_one(name, source, spec, settings, tokenizer, base_tokenizer, text_info, report,
               final: Path, staging: Path, writing: list[Path], record: dict) -> PrepareSummary:
    start = time.perf_counter()
    rows: pd.DataFrame = source.rows
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    modalities = [m for m in MODALITY_ORDER if m in spec.modalities]
    tab_state = _fit_tabular(rows, settings) if "tabular" in modalities else None
    series_state = _fit_series(rows, settings) if "series" in modalities else None
    arrow = pa.Table.from_pandas(rows, schema=spec.schema, preserve_index=False).replace_schema_metadata(None)
    schema = arrow.schema
    for modality in modalities:
        schema = _stage_schema(schema, modality)

    actor_rejected = pd.DataFrame(columns=REJECTED_SCHEMA.names)
    splits: dict[str, int] = {}
    if len(arrow):
        report(name, f"preprocess {'+'.join(modalities)} and write")
        ds = ray.data.from_arrow(_chunks(arrow, settings.actors.batch_size * 4))
        stage_schema = arrow.schema
        for modality in modalities:
            stage_schema = _stage_schema(stage_schema, modality)
            ds = ds.map_batches(
                _Stage,
                fn_constructor_kwargs={
                    "modality": modality,
                    "kwargs": _stage_kwargs(modality, spec, settings, tokenizer, tab_state, series_state),
                    "schema": stage_schema,
                },
                compute=ray.data.ActorPoolStrategy(size=settings.actors.size),
                num_cpus=settings.actors.num_cpus,
                batch_size=settings.actors.batch_size,
                batch_format="pandas",
            )
        ds = ds.map_batches(_partition, batch_format="pyarrow", num_cpus=settings.actors.num_cpus)
        ds.write_parquet(str(staging), partition_cols=[PART])
        splits, actor_rejected = _collect_partitions(staging)

    report(name, "manifest")
    rejected = pd.concat([loader_rejects(source.rejected), actor_rejected], ignore_index=True)
    rejected_table = pa.Table.from_pandas(rejected, schema=REJECTED_SCHEMA, preserve_index=False)
    writing.append(staging / REJECTED)
    pq.write_table(rejected_table.replace_schema_metadata(None), staging / REJECTED)
    written = sum(splits.values())
    reconcile(name, source.n_read, source.n_sliced_out, written, len(rejected))

    rejected_counts = {str(k): int(v) for k, v in rejected["reason"].value_counts().items()}
    unk = {}
    if "text" in modalities:
        texts = rows["text"].tolist()
        unk = {
            "base": unk_stats(base_tokenizer, texts)["unk_rate"],
            "extended": unk_stats(tokenizer, texts)["unk_rate"],
        }
    files = sorted(staging.glob("*/*.parquet"))
    out_schema = pq.read_schema(files[0]) if files else schema
    writing.append(staging / "manifest.json")
    write_manifest(
        staging,
        {
            "dataset": name,
            "title": spec.title,
            "source_url": spec.source_url,
            "license": spec.license,
            "modalities": modalities,
            "n_read": source.n_read,
            "n_sliced_out": source.n_sliced_out,
            "n_written": written,
            "n_rejected": len(rejected),
            "splits": splits,
            **({"classes": source.classes} if source.classes is not None else {}),
            "rejected": rejected_counts,
            "rejected_by_stage": {str(k): int(v) for k, v in rejected["stage"].value_counts().items()},
            "schema": schema_to_json(out_schema),
            "tokenizer": {k: record[k] for k in ("version", "kind", "corpora") if k in record},
            "shapes": _shapes(modalities, settings),
            "state": _state(modalities, settings, tab_state, text_info, unk, series_state),
            "source_files": [{"path": str(p), "sha256": sha256_file(p)} for p in source.files],
            "settings": settings.model_dump(mode="json"),
        },
    )
    _replace_folder(staging, final)
    report(name, "done")
    return PrepareSummary(
        dataset=name,
        output_dir=str(final),
        n_read=source.n_read,
        n_sliced_out=source.n_sliced_out,
        splits=splits,
        rejected=rejected_counts,
        unk_rates=unk,
        wall_s=round(time.perf_counter() - start, 2),
    )


def _collect_partitions(staging: Path) -> tuple[dict[str, int], pd.DataFrame]:
    """Rename `out_partition=<split>/` to `<split>/`, count its rows; read and remove the rejected partition."""
    splits: dict[str, int] = {}
    rejects = pd.DataFrame(columns=REJECTED_SCHEMA.names)
    for folder in sorted(p for p in staging.iterdir() if p.is_dir() and p.name.startswith(PART + "=")):
        value = folder.name.split("=", 1)[1]
        files = sorted(folder.glob("*.parquet"))
        if value == REJECTED_PART:
            rejects = actor_rejects(files, REJECT)
            shutil.rmtree(folder)
            continue
        folder.rename(staging / value)
        splits[value] = sum(pq.ParquetFile(f).metadata.num_rows for f in (staging / value).glob("*.parquet"))
    return dict(sorted(splits.items())), rejects


def _shapes(modalities: list[str], settings: DataSection) -> dict[str, list[int]]:
    """Logical shapes of the flattened list columns (row-major)."""
    shapes: dict[str, list[int]] = {}
    if "image" in modalities:
        shapes["pixel_values"] = [3, settings.image.image_size, settings.image.image_size]
    if "series" in modalities:
        shapes["series_values"] = [settings.series.window_days, N_FEATURES]
        shapes["series_mask"] = [settings.series.window_days]
    return shapes


def _state(modalities, settings, tab_state, text_info, unk, series_state) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if "tabular" in modalities:
        state["tabular"] = json.loads(tab_state.to_json()) | {"cardinalities": tab_state.cardinalities,
                                                              "version": tabular_version(tab_state)}
    if "text" in modalities:
        state["text"] = dict(text_info) | {"max_length": settings.text.max_length, "unk_rates": unk}
    if "series" in modalities:
        state["series"] = json.loads(series_state.to_json())  # features, window_days, clip, means, stds, ...
    if "image" in modalities:
        state["image"] = settings.image.model_dump(mode="json")
    return state


# --------------------------------------------------------------------------------------------- readers


def read_prepared(output_dir: str | Path, dataset: str, split: str) -> ray.data.Dataset:
    """The shards of one prepared split as a Ray Dataset (for trainers)."""
    folder = Path(output_dir) / dataset / split
    if not folder.is_dir():
        have = sorted(p.name for p in (Path(output_dir) / dataset).glob("*") if p.is_dir())
        raise FileNotFoundError(f"no prepared split {split!r} of {dataset!r} under {output_dir} (found: {have})")
    return ray.data.read_parquet(str(folder))
