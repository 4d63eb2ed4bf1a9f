"""Rows/s of the Ray Data preprocessing pipeline against the same actors called in one plain process.

Both paths run the same `_Stage` objects (actor + cast to the output Arrow schema) over the same rows in
the same batches; Ray adds its per-modality actor pools and streaming between them. Loading the raw files
and writing Parquet are excluded from both; Ray's cluster start is excluded and reported separately.

    RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=. .venv/bin/python bench/preprocess.py \
        --lending-rows 20000 --stocknet-rows 5000 --out docs/benchmarks/preprocess.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import ray

from actors.pipeline import MODALITY_ORDER, _chunks, _fit_tabular, _Stage, _stage_kwargs, _stage_schema, text_corpora
from actors.settings import ActorPoolSettings, DataSection
from actors.sources import SOURCES, load_source
from actors.text import build_tokenizer


def _stages(name, rows, settings, tokenizer):
    spec = SOURCES[name]
    modalities = [m for m in MODALITY_ORDER if m in spec.modalities]
    tab_state = _fit_tabular(rows, settings) if "tabular" in modalities else None
    arrow = pa.Table.from_pandas(rows, schema=spec.schema, preserve_index=False).replace_schema_metadata(None)
    schema, stages = arrow.schema, []
    for m in modalities:
        schema = _stage_schema(schema, m)
        stages.append(
            {"modality": m, "kwargs": _stage_kwargs(m, spec, settings, tokenizer, tab_state), "schema": schema}
        )
    return arrow, stages


def run_plain(arrow: pa.Table, stages, batch_size: int) -> float:
    start = time.perf_counter()
    actors = [_Stage(**s) for s in stages]  # state loaded once, as in the pool's actors
    for i in range(0, len(arrow), batch_size):
        table = arrow.slice(i, batch_size)
        for actor in actors:
            table = actor(table.to_pandas())
    return time.perf_counter() - start


def run_ray(arrow: pa.Table, stages, settings: DataSection) -> float:
    start = time.perf_counter()
    ds = ray.data.from_arrow(_chunks(arrow, settings.actors.batch_size * 4))
    for s in stages:
        ds = ds.map_batches(
            _Stage,
            fn_constructor_kwargs=s,
            compute=ray.data.ActorPoolStrategy(size=settings.actors.size),
            num_cpus=settings.actors.num_cpus,
            batch_size=settings.actors.batch_size,
            batch_format="pandas",
        )
    n = ds.materialize().count()
    assert n == len(arrow), (n, len(arrow))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lending-rows", type=int, default=20_000)
    parser.add_argument("--stocknet-rows", type=int, default=5_000)
    parser.add_argument("--pool-sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    base = DataSection()
    load_before = os.getloadavg()
    t = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ray_start = time.perf_counter() - t

    tables = {n: load_source(n, base) for n in ("lending_club", "stocknet")}
    corpora = text_corpora()
    extra = {n: load_source(n, base) for n in corpora if n not in tables}
    train_texts = [
        x
        for tbl in list(tables.values()) + list(extra.values())
        for x in tbl.rows.loc[tbl.rows["split"] == "train", "text"].tolist()
        if isinstance(x, str)
    ]
    tokenizer, info = build_tokenizer(base, train_texts)
    del extra

    results = []
    for name, n_rows in (("lending_club", args.lending_rows), ("stocknet", args.stocknet_rows)):
        rows = tables[name].rows.iloc[:n_rows].reset_index(drop=True)
        arrow, stages = _stages(name, rows, base, tokenizer)
        mods = "+".join(s["modality"] for s in stages)
        plain = run_plain(arrow, stages, base.actors.batch_size)
        results.append((name, mods, len(arrow), "plain Python, 1 process", plain))
        print(f"{name}: plain {len(arrow) / plain:,.0f} rows/s", flush=True)
        for size in args.pool_sizes:
            settings = base.model_copy(update={"actors": ActorPoolSettings(size=size, num_cpus=0.25)})
            run_ray(arrow.slice(0, 512), stages, settings)  # warm-up: worker processes and imports
            took = run_ray(arrow, stages, settings)
            results.append((name, mods, len(arrow), f"Ray Data, {size} actor(s)/modality x 0.25 CPU", took))
            print(f"{name}: ray size={size} {len(arrow) / took:,.0f} rows/s", flush=True)

    lines = [
        "| data set | modalities | rows | path | seconds | rows/s | vs plain |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    plain_rate = {}
    for name, mods, n, path, secs in results:
        rate = n / secs
        if path.startswith("plain"):
            plain_rate[name] = rate
        lines.append(
            f"| {name} | {mods} | {n:,} | {path} | {secs:.1f} | {rate:,.0f} | {rate / plain_rate[name]:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        command = "RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=. .venv/bin/python " + " ".join(sys.argv)
        load = f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
        cpu = platform.processor() or platform.machine()
        machine = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, ray {ray.__version__}"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            f"# Preprocessing throughput: Ray Data actor pools vs one plain process\n\n"
            f"- Date: {date.today().isoformat()}\n- Command: `{command}`\n- Machine: {machine}\n"
            f"- 1-minute load average: {load} (the machine is shared with other jobs)\n"
            f"- Ray cluster start (excluded): {ray_start:.1f} s. Tokenizer: MiniLM WordPiece + "
            f"{info['added_tokens']} CJK tokens. Raw loading and Parquet writing are excluded from both paths.\n"
            f"- Ray timings include actor-pool start-up of each run (after one warm-up run) and "
            f"`materialize()` into the object store.\n\n{table}\n"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
