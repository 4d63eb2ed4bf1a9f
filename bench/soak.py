"""Soak: bench/load.py's closed-loop mix of all 4 endpoints for a long run (default 10 min at 32 clients),
with the RSS of every Serve process (controller, HTTP proxy, every replica) sampled every 10 s.

Reports, per minute, requests, errors and p50/p99 latency (so slow degradation shows), and per process its
RSS at the end of the warm-up, at the end and its peak, and the growth after warm-up (goal: under 5%, and 0
errors). The Serve processes are the Ray workers named `ray::ServeController`, `ray::ProxyActor` and
`ray::ServeReplica:<app>:<deployment>` among this driver's descendants (its own local cluster); a replica
that restarts shows as a new pid.

    python bench/soak.py                                  # 10 min, 32 clients, its own app on a tiny bundle
    python bench/soak.py --minutes 2 --clients 8 --json artifacts/bench/soak/summary.json
    python bench/soak.py --url http://127.0.0.1:8000      # a running app: RSS only if it is this driver's
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import load as load_bench  # bench/load.py: start_app, run_load, LoadResult
import psutil

ROOT = Path(__file__).resolve().parent.parent
SERVE_PREFIXES = ("ray::ServeController", "ray::ProxyActor", "ray::ServeReplica")


def serve_processes(root: psutil.Process | None = None) -> dict[int, str]:
    """pid -> Ray's process title of every Serve process among `root`'s descendants (default: this one)."""
    root = root or psutil.Process(os.getpid())
    out = {}
    for proc in root.children(recursive=True):
        try:
            title = " ".join(proc.cmdline()).strip()
        except psutil.Error:
            continue
        if title.startswith(SERVE_PREFIXES):
            out[proc.pid] = re.sub(r"\.\w+$", "", title.split()[0])  # less a method name being run
    return out


def sample_rss(pids: dict[int, str]) -> dict[int, tuple[int, int]]:
    """pid -> (RSS, USS) in bytes. USS (memory only this process holds) leaves out the shared pages RSS counts,
    such as the object store's mapped memory."""
    out = {}
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
            out[pid] = (info.rss, info.uss)
        except psutil.Error:
            pass
    return out


async def sampler(samples: list, every_s: float, stop: asyncio.Event, t0: float) -> None:
    """Every `every_s`: (seconds since t0, {pid: (title, (rss, uss) bytes)}) into `samples`, until `stop`."""
    while True:
        pids = serve_processes()
        rss = sample_rss(pids)
        samples.append((time.perf_counter() - t0, {pid: (pids[pid], b) for pid, b in rss.items()}))
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
            return
        except TimeoutError:
            pass


async def soak(url: str, clients: int, seconds: float, every_s: float) -> tuple[load_bench.LoadResult, list]:
    samples: list = []
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(sampler(samples, every_s, stop, t0))
    try:
        result = await load_bench.run_load(url, clients=clients, seconds=seconds, seed=7)
    finally:
        stop.set()
        await task
    return result, samples


def memory_table(samples: list, warmup_s: float) -> list[dict]:
    """Per process: RSS (MiB) at the first sample after warm-up, at the last sample and at its peak; growth of
    RSS and of USS after warm-up in percent."""
    series: dict[int, list[tuple[float, str, int, int]]] = {}
    for t, procs in samples:
        for pid, (title, (rss, uss)) in procs.items():
            series.setdefault(pid, []).append((t, title, rss, uss))
    rows = []
    for pid, points in sorted(series.items(), key=lambda kv: kv[1][0][1]):
        after = [p for p in points if p[0] >= warmup_s] or points[-1:]
        base, last = after[0], after[-1]
        mib = 2**20
        rows.append({"process": points[0][1], "pid": pid, "samples": len(points),
                     "first_s": round(points[0][0]), "last_s": round(points[-1][0]),
                     "rss_start_mib": round(points[0][2] / mib, 1), "rss_after_warmup_mib": round(base[2] / mib, 1),
                     "rss_end_mib": round(last[2] / mib, 1), "rss_peak_mib": round(max(p[2] for p in points) / mib, 1),
                     "growth_after_warmup_pct": round(100 * (last[2] - base[2]) / base[2], 2),
                     "uss_after_warmup_mib": round(base[3] / mib, 1), "uss_end_mib": round(last[3] / mib, 1),
                     "uss_growth_after_warmup_pct": round(100 * (last[3] - base[3]) / max(base[3], 1), 2)})
    return rows


def rss_series(samples: list) -> dict[str, list[list[float]]]:
    """'<title> <pid>' -> [[seconds, RSS MiB], ...] for every sample: whether growth levels off shows here."""
    out: dict[str, list[list[float]]] = {}
    for t, procs in samples:
        for pid, (title, (rss, _)) in procs.items():
            out.setdefault(f"{title} {pid}", []).append([round(t), round(rss / 2**20, 1)])
    return out


def per_minute(result: load_bench.LoadResult) -> list[dict]:
    rows = []
    for m in range(int(-(-result.wall_s // 60))):
        s = result.summary(60 * m, 60 * (m + 1))
        rows.append({"minute": m + 1, "requests": s["requests"], "rps": s["rps"], "errors": s["errors"],
                     "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"]})
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="A running app (loopback). Default: start one on a local Ray cluster.")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--sample-every", type=float, default=10.0, help="Seconds between RSS samples.")
    ap.add_argument("--warmup", type=float, default=60.0, help="Seconds of the run before growth is measured.")
    ap.add_argument("--bundle", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--work", default=str(ROOT / "artifacts" / "bench" / "soak"))
    ap.add_argument("--json", help="Also write the summary here.")
    args = ap.parse_args(argv)
    seconds = args.minutes * 60
    load_bench.check_target(args.url or "http://127.0.0.1", args.clients, seconds)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    url = args.url or load_bench.start_app(args.bundle, Path(args.work) / args.bundle)[0]
    try:
        asyncio.run(load_bench.run_load(url, clients=4, seconds=5.0, seed=99))  # first calls of every path
        result, samples = asyncio.run(soak(url, args.clients, seconds, args.sample_every))
    finally:
        if args.url is None:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    total = result.summary()
    memory = memory_table(samples, args.warmup)
    summary = {"started": started, "url": url, "clients": args.clients, "seconds": seconds,
               "bundle": args.bundle if args.url is None else "external", "wall_s": round(result.wall_s, 1),
               "requests": total["requests"], "rps": total["rps"], "errors": total["errors"],
               "errors_by_status": total["errors_by_status"], "exceptions": sorted(set(result.exceptions.values())),
               "p50_ms": total["p50_ms"], "p95_ms": total["p95_ms"], "p99_ms": total["p99_ms"],
               "errors_per_minute": round(total["errors"] / (result.wall_s / 60), 2),
               "per_endpoint": total["per_endpoint"], "per_minute": per_minute(result),
               "warmup_s": args.warmup, "rss_samples": len(samples), "memory": memory,
               "rss_series_mib": rss_series(samples),
               "max_growth_after_warmup_pct": max((r["growth_after_warmup_pct"] for r in memory), default=None),
               "max_uss_growth_after_warmup_pct": max((r["uss_growth_after_warmup_pct"] for r in memory), default=None),
               "serve_total_rss_mib": {"after_warmup": round(sum(r["rss_after_warmup_mib"] for r in memory), 1),
                                       "end": round(sum(r["rss_end_mib"] for r in memory), 1)}}
    load_bench.write_summary(summary, args.json)
    return summary


if __name__ == "__main__":
    s = main()
    sys.exit(0 if s["errors"] == 0 and s["memory"] else 1)
