"""The blocks a training stream's shuffle receives, and the memory it takes, with the read fused into the
shuffle's map task (`fused`, what `cluster.streams.build_rank_datasets` did) against the read materialized
before the shuffle (`materialized`, what it does now).

    .venv/bin/python bench/shuffle_blocks.py --output-dir artifacts/demo/data [--dataset stocknet]

Each mode runs in a fresh process with its own 2-CPU local Ray cluster: it builds the stream's rank datasets
exactly as the trainers do (`cluster.streams.build_rank_datasets`: read, select, shuffle, split) and reads both
ranks' shards to the end. The parent samples the machine's used + shared memory (the object store lives in
shared memory) every 0.25 s. Ray's "Input block to map task has size ... MiB" warnings are counted from the
child's output. Writes docs/benchmarks/shuffle-blocks.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time
import ray
output_dir, dataset, mode = sys.argv[1:4]
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True)
ctx = ray.data.DataContext.get_current()
ctx.enable_progress_bars = False
from pathlib import Path
from cluster.streams import build_rank_datasets, task_stream
from cluster.tasks import TASKS
task = next(t for t in TASKS.values() if dataset in t.datasets)
stream = task_stream(task.name, task.head, (dataset,), Path(output_dir))
started = time.perf_counter()
shards = build_rank_datasets(stream, Path(output_dir), "train", 2, 16, 0,
                             materialize_before_shuffle=(mode == "materialized"))
rows = sum(sum(len(b["label"]) for b in shard.iter_batches(batch_size=256)) for shard in shards.values())
print(f"ROWS {rows} SECONDS {time.perf_counter() - started:.1f}", flush=True)
time.sleep(2)  # let the workers' log lines reach the driver
"""


def used_mib() -> float:
    vm = psutil.virtual_memory()
    return (vm.used + vm.shared) / 2**20


def run_mode(output_dir: Path, dataset: str, mode: str) -> dict:
    base = used_mib()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(output_dir), dataset, mode], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = base
    lines: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
    reader.start()
    while child.poll() is None:
        peak = max(peak, used_mib())
        time.sleep(0.25)
    reader.join(timeout=10)
    text = "".join(lines)
    if child.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{text[-3000:]}")
    blocks = [int(m) for m in re.findall(r"Input block to map task has size (\d+)MiB", text)]
    rows, seconds = re.search(r"ROWS (\d+) SECONDS ([\d.]+)", text).groups()
    return {"mode": mode, "rows": int(rows), "seconds": float(seconds), "warnings": len(blocks),
            "largest_warned_mib": max(blocks) if blocks else None, "peak_mib": peak - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True, help="a prepared data folder (data.output_dir)")
    parser.add_argument("--dataset", default="stocknet")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "shuffle-blocks.md")
    args = parser.parse_args()
    folder = args.output_dir / args.dataset / "train"
    files = sorted(folder.glob("*.parquet"))
    on_disk = sum(f.stat().st_size for f in files) / 2**20
    results = [run_mode(args.output_dir, args.dataset, mode) for mode in ("fused", "materialized")]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# The blocks a training stream's shuffle receives",
        "",
        f"- Date: {when}; command: `python bench/shuffle_blocks.py --output-dir {args.output_dir} "
        f"--dataset {args.dataset}`",
        f"- Machine: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; a fresh 2-CPU local "
        "Ray cluster per mode",
        f"- Data: {args.dataset} train split, {len(files)} shards, {on_disk:.1f} MiB on disk; the stream of its task "
        "(every model input + label), read, shuffled and split for 2 ranks as `cluster.streams.build_rank_datasets` "
        "does, then both ranks' shards read to the end",
        "- Peak memory: the machine's used + shared memory (the object store is shared memory) above what it was "
        "before the child started, sampled every 0.25 s",
        "",
        "| plan | rows | seconds | Ray's large-block warnings | largest block warned (MiB) | peak memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {"fused": "read fused into the shuffle (before)", "materialized": "read materialized first (now)"}
    for r in results:
        lines.append(f"| {names[r['mode']]} | {r['rows']:,} | {r['seconds']:.1f} | {r['warnings']} | "
                     f"{r['largest_warned_mib'] or '-'} | {r['peak_mib']:,.0f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
