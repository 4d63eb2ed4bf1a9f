"""Serve benchmark: the finmm Ray Serve app vs a plain FastAPI + uvicorn process serving the same model.

Sentiment and credit endpoints at 1, 8 and 32 concurrent clients: throughput, p50, p99, ratios. Writes
docs/benchmarks/serve.md. Model: artifacts/finetune/latest if it exists, else a `small` bundle (MiniLM-initialised
text path and encoder, other weights random) built from a slice of the prepared data.

    python bench/serve.py [--seconds 8] [--out docs/benchmarks/serve.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

CLIENTS = (1, 8, 32)
SENTIMENT = {"text": "The company reported quarterly profits well above analyst expectations"}
CREDIT = {"features": {"loan_amnt": 12000, "term": 36, "int_rate": 0.13, "annual_inc": 55000, "dti": 18.5,
                       "grade": "C", "sub_grade": "C2", "home_ownership": "RENT", "purpose": "debt_consolidation"},
          "text": "title: Debt consolidation | employer: Teacher"}
ENDPOINTS = {"sentiment": ("/v1/sentiment", SENTIMENT), "credit": ("/v1/credit-risk", CREDIT)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_small_bundle(out: Path) -> Path:
    if (out / "bundle" / "model.safetensors").exists():
        return out / "bundle"
    import torch
    from tokenizers import Tokenizer

    from actors.manifest import TOKENIZER
    from actors.pipeline import prepare
    from actors.settings import DataSection
    from cluster.trainer import batch_layout, preprocessing_state
    from finmm.config import FinMMSettings
    from model.bundle import save_bundle
    from model.factory import build_model
    from model.settings import ModelSection

    data = DataSection(max_rows_per_split=256, output_dir=out / "data")
    prepare(data, ["lending_club", "financial_phrasebank", "banking77", "stocknet"],
            vocab_datasets=["financial_phrasebank", "banking77"])
    settings = FinMMSettings(data=data)
    layout = batch_layout(settings)
    tok = out / "data" / TOKENIZER
    torch.manual_seed(0)
    heads = {"credit_risk": {}, "stock_movement": {}, "sentiment": {}, "intent": {"num_classes": 77}}
    model = build_model(ModelSection(preset="small", init_from_minilm=True, heads=heads),
                        Tokenizer.from_file(str(tok)).get_vocab_size(), layout.tabular_schema(), kind="task").eval()
    return save_bundle(out / "bundle", model, tok, preprocessing_state(settings, layout))


async def load(url: str, path: str, body: dict, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=clients + 4)) as c:
        for _ in range(2):  # warm-up
            await c.post(path, json=body)
        stop = time.perf_counter() + seconds

        async def worker():
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await c.post(path, json=body)
                if r.status_code != 200:
                    errors += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"rps": len(latencies) / wall, "p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], "n": len(latencies),
            "errors": errors}


def run_all(url: str, seconds: float) -> dict:
    out = {}
    for name, (path, body) in ENDPOINTS.items():
        for n in CLIENTS:
            out[(name, n)] = asyncio.run(load(url, path, body, n, seconds))
            print(name, n, {k: round(v, 1) for k, v in out[(name, n)].items()}, flush=True)
    return out


def wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{url}/v1/sentiment", json=SENTIMENT, timeout=30).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--out", default=str(ROOT / "docs/benchmarks/serve.md"))
    ap.add_argument("--work", default=str(ROOT / "artifacts/bench/serve"))
    args = ap.parse_args()
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    latest = ROOT / "artifacts/finetune/latest"
    if (latest / "model.safetensors").exists():
        bundle, which = latest.resolve(), f"finetuned bundle {latest.resolve()}"
    else:
        bundle = build_small_bundle(Path(args.work))
        which = "`small` preset (d=384, 6 layers), text path + encoder from all-MiniLM-L6-v2, heads random"

    # 1. baseline: FastAPI + uvicorn, one process, fp32, no batching (Serve not running yet)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "serve.baseline_app", str(bundle), str(port)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_up(base_url)
        print("baseline up", flush=True)
        baseline = run_all(base_url, args.seconds)
    finally:
        proc.terminate()
        proc.wait(30)

    # 2. the Ray Serve app (same model), deployed from its config as `finmm serve` does
    from ray import serve

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    port = free_port()
    section = ServeSection(http={"host": "127.0.0.1", "port": port})
    deploy(serve_config(section, bundle))
    serve_url = f"http://127.0.0.1:{port}"
    wait_up(serve_url)
    print("serve up", flush=True)
    served = run_all(serve_url, args.seconds)
    stats = httpx.get(f"{serve_url}/v1/stats").json()["backbone"]
    bf16 = httpx.get(f"{serve_url}/v1/models").json()["bf16"]
    serve.shutdown()
    ray.shutdown()
    write_report(Path(args.out), baseline, served, which, section, bf16, stats, args.seconds)


def write_report(path: Path, baseline: dict, served: dict, which: str, section, bf16: bool, stats: dict,
                 seconds: float) -> None:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# Serve benchmark: Ray Serve app vs plain FastAPI + uvicorn",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `python bench/serve.py --seconds {seconds:g}`",
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, no GPU",
        f"- Model: {which}",
        "- Requests: explanations on (the API default: reason codes / driving words, grad x input). "
        "Closed loop: each client sends its next request when the previous answer arrives; "
        f"{seconds:g} s per cell after 2 warm-up requests.",
        "- Baseline: `serve/baseline_app.py`, one uvicorn process, same preprocessing and model code, fp32, "
        "one forward + one explanation per request.",
        f"- finmm Serve: 7 deployments at {section.tasks.num_cpus} CPU each on a 2-CPU local Ray cluster, backbone "
        f"@serve.batch max_batch_size={section.batch.max_batch_size}, "
        f"batch_wait_timeout_s={section.batch.batch_wait_timeout_s}, bf16={bf16}. Backbone batches during "
        f"the run: mean {stats['mean_batch_size']:.1f}, max {stats['max_batch_size']}.",
        "",
        "| endpoint | clients | baseline req/s | serve req/s | throughput ratio | baseline p50 ms | serve p50 ms "
        "| p50 overhead ms | baseline p99 ms | serve p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for (name, n), b in baseline.items():
        s = served[(name, n)]
        ratio = s["rps"] / b["rps"] if b["rps"] else float("nan")
        lines.append(f"| {name} | {n} | {b['rps']:.1f} | {s['rps']:.1f} | {ratio:.2f}x | {b['p50']:.1f} | "
                     f"{s['p50']:.1f} | {s['p50'] - b['p50']:+.1f} | {b['p99']:.1f} | {s['p99']:.1f} |")
        if n == 32:
            verdicts.append(f"- {name}, 32 clients: throughput {ratio:.2f}x the baseline (target >= 2x): "
                            f"{'met' if ratio >= 2 else 'MISSED'}.")
        if n == 1:
            over = s["p50"] - b["p50"]
            verdicts.append(f"- {name}, 1 client: p50 overhead {over:+.1f} ms (target <= 15 ms): "
                            f"{'met' if over <= 15 else 'MISSED'}.")
    errors = sum(v["errors"] for v in [*baseline.values(), *served.values()])
    lines += ["", "## Targets", "", *verdicts, f"- Non-200 answers during the run: {errors}.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
