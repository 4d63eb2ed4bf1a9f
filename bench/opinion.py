"""Opinion-monitor ingest throughput: items/s into POST /v1/opinion/items at 1 and 32 producers, and the latency
from an item's arrival to its index update.

Each producer is a closed loop: it posts a batch of `--batch` new items (unique ids, tickers drawn from 50,
times inside one day, finance sentences) and sends the next when the answer comes. The answer is sent after
the batch is scored by the Backbone and committed to its shard's SQLite file, and carries each item's updated
index, so the request's round trip is the latency from arrival to index update.

    python bench/opinion.py                           # own app on a tiny bundle, fresh state, 1 and 32 producers
    python bench/opinion.py --url http://127.0.0.1:8000 --producers 1,32 --batch 1,16 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench.load import SENTENCES, check_target, wait_ready  # noqa: E402

TICKERS = [f"T{i:02d}" for i in range(50)]
DAY0 = 1_420_070_400  # 2015-01-01T00:00:00Z


async def producers(url: str, n: int, batch: int, seconds: float, run: str, headers: dict | None) -> dict:
    """`n` closed-loop producers for `seconds`; items/s, request latency percentiles, errors."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    items_done = 0
    deadline = time.perf_counter() + seconds

    async def one(k: int) -> None:
        nonlocal items_done
        rng = random.Random(f"{run}:{k}")
        seq = 0
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
            while time.perf_counter() < deadline:
                items = []
                for _ in range(batch):
                    seq += 1
                    t = DAY0 + rng.randrange(86400)
                    items.append({"ticker": rng.choice(TICKERS), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                       time.gmtime(t)),
                                  "text": rng.choice(SENTENCES), "source": "bench", "id": f"{run}:{k}:{seq}"})
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/opinion/items", json={"items": items})
                    ok = r.status_code == 200
                    if not ok:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                except httpx.HTTPError as exc:
                    ok = False
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                if ok:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    items_done += batch

    t_start = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(n)))
    wall = time.perf_counter() - t_start
    lat = sorted(latencies)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

    return {"producers": n, "batch": batch, "seconds": round(wall, 1), "requests": len(lat), "items": items_done,
            "items_per_s": round(items_done / wall, 1), "latency_ms_p50": pct(0.5), "latency_ms_p95": pct(0.95),
            "latency_ms_p99": pct(0.99), "errors": errors}


def start_app(work: Path) -> str:
    """A local 2-CPU Ray cluster and the app over the serve tests' tiny bundle, state in a fresh folder."""
    import importlib.util
    import socket

    import ray

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    folder = work / "bundle"
    if not (folder / "model.safetensors").exists():
        spec = importlib.util.spec_from_file_location("_serve_fixtures", ROOT / "tests" / "serve" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        folder = module.build_bundle(work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = work / f"state-{int(time.time())}"
    deploy(serve_config(ServeSection(http={"host": "127.0.0.1", "port": port}, state_dir=state), folder))
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    return url


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="A running app (loopback). Default: start one on a tiny bundle.")
    ap.add_argument("--producers", default="1,32", help="Producer counts to measure, comma-separated.")
    ap.add_argument("--batch", default="1,16", help="Items per request, comma-separated.")
    ap.add_argument("--seconds", type=float, default=20.0, help="Seconds per cell.")
    ap.add_argument("--api-key", default=os.environ.get("FINMM_API_KEY"))
    ap.add_argument("--work", default=str(ROOT / "artifacts" / "bench" / "opinion"))
    ap.add_argument("--json", help="Also write the results here.")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.producers.split(",")]
    batches = [int(x) for x in args.batch.split(",")]
    check_target(args.url or "http://127.0.0.1", max(counts), args.seconds)
    url = args.url or start_app(Path(args.work))
    headers = {"authorization": f"Bearer {args.api_key}"} if args.api_key else None
    run = f"bench{int(time.time())}"
    try:
        asyncio.run(producers(url, 2, 4, 3.0, run + "w", headers))  # warm-up
        cells = [asyncio.run(producers(url, n, b, args.seconds, f"{run}:{n}:{b}", headers))
                 for b in batches for n in counts]
    finally:
        if args.url is None:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    out = {"url": url if args.url else "own app (tiny bundle, 2-CPU local Ray)", "cpus": os.cpu_count(),
           "command": "python bench/opinion.py " + " ".join(argv if argv is not None else sys.argv[1:]), "cells": cells}
    print("| producers | items/request | items/s | requests | arrival -> index p50 / p95 / p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for c in cells:
        print(f"| {c['producers']} | {c['batch']} | {c['items_per_s']} | {c['requests']} | {c['latency_ms_p50']} / "
              f"{c['latency_ms_p95']} / {c['latency_ms_p99']} | {c['errors'] or 0} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
