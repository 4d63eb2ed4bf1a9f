"""Serve benchmark: the finmm Ray Serve app vs a plain FastAPI + uvicorn process serving the same model.

Side by side in one run: the baseline (`serve/baseline_app.py`: one uvicorn process, the same engine, the same
precision and explanation method as the served config, torch on every core) and the served graph, on the
sentiment and credit endpoints, explanations on and off, at 1, 8, 32 and 64 closed-loop clients. Each Serve
configuration runs in a child process with a fresh local 2-CPU Ray cluster (Ray Serve's own switches are
environment variables read when Serve starts). `--part steps` measures one configuration per change of issue 17,
cumulatively, on three cells. Both parts write their figures under --work; docs/benchmarks/serve.md is written
from whatever parts have been measured.

    python bench/serve.py --model-dir DIR --part main --seconds 6
    python bench/serve.py --part steps --seconds 6      # no --model-dir: a `small` bundle with random heads
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

CLIENTS = (1, 8, 32, 64)
SENTIMENT = {"text": "The company reported quarterly profits well above analyst expectations"}
CREDIT = {"features": {"loan_amnt": 12000, "term": 36, "int_rate": 0.13, "annual_inc": 55000, "dti": 18.5,
                       "grade": "C", "sub_grade": "C2", "home_ownership": "RENT", "purpose": "debt_consolidation"},
          "text": "title: Debt consolidation | employer: Teacher"}
ENDPOINTS = {"sentiment": ("/v1/sentiment", SENTIMENT, "sentiment"),
             "credit": ("/v1/credit-risk", CREDIT, "credit_risk")}
"""name -> (path, body, the head it needs)."""
TRAIN_TASK = {"sentiment": "sentiment", "credit_risk": "credit_risk"}
MAIN_CELLS = [(e, x, n) for e in ENDPOINTS for x in (True, False) for n in CLIENTS]
STEP_CELLS = [("sentiment", False, 1), ("sentiment", False, 32)]
BEFORE = {"layout": "split", "backbone": {"num_cpus": 0.25, "torch_threads": 1},
          "batch": {"batch_wait_timeout_s": 0.005, "bucket_by_length": False}, "access_log": True}
"""Issue 17's starting point, as far as config reaches: three hops, a 0.25-CPU one-thread backbone, a 5 ms batch
wait, no length buckets, access logs on. (The forward off the event loop and the one-forward customer-service
answer are code, not settings: every row below has them.)"""
STEPS = [
    ("before: split layout, backbone 0.25 CPU / 1 thread, 5 ms wait, no buckets, access logs on", BEFORE, {}),
    ("one hop (tasks in the ingress)", {**BEFORE, "layout": "one_hop"}, {}),
    ("backbone 1.25 CPU / 2 threads (auto)", {**BEFORE, "layout": "one_hop", "backbone": {}}, {}),
    ("adaptive batch wait (none alone, up to 10 ms under load), length buckets", {"access_log": True}, {}),
    ("access logs off (= the defaults)", {}, {}),
    ("RAY_SERVE_THROUGHPUT_OPTIMIZED=1", {}, {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}),
    ("RAY_SERVE_ENABLE_HA_PROXY=1 (with the row above)", {}, {"RAY_SERVE_ENABLE_HA_PROXY": "1"}),
    ("layout fused (batcher and model in the ingress), both switches off again", {"layout": "fused"},
     {"RAY_SERVE_THROUGHPUT_OPTIMIZED": None, "RAY_SERVE_ENABLE_HA_PROXY": None}),
    ("layout fused + RAY_SERVE_ENABLE_HA_PROXY=1", {"layout": "fused"}, {"RAY_SERVE_ENABLE_HA_PROXY": "1"}),
]
"""(change, serve section overrides, Serve environment: None unsets), the environment cumulative over the rows
above it."""
FINAL = ({}, {})
"""The configuration of the main comparison: the defaults (what `finmm serve` runs)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_small_bundle(out: Path) -> Path:
    """A `small` bundle (MiniLM-initialised text path and encoder, heads random) over a 256-row slice."""
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


def check_heads(bundle: Path) -> None:
    """Refuse a bundle without a head the benchmark's endpoints need, naming it and the finetune that adds it."""
    try:
        heads = set(json.loads((bundle / "config.json").read_text()).get("heads", {}))
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"bench/serve.py: cannot read the heads of {bundle}/config.json ({exc})") from None
    missing = [head for _, _, head in ENDPOINTS.values() if head not in heads]
    if missing:
        raise SystemExit(
            f"bench/serve.py: {bundle} has no {' or '.join(missing)} head (heads: {', '.join(sorted(heads)) or 'none'})"
            f"; the benchmark serves /v1/sentiment and /v1/credit-risk. Finetune both (`finmm finetune --tasks "
            f"{','.join(TRAIN_TASK[h] for h in ('sentiment', 'credit_risk'))}`) or leave out --model-dir "
            "to use a small bundle with random heads.")


# ------------------------------------------------------------------------------------------ load
async def load(url: str, cell: tuple[str, bool, int], seconds: float) -> dict:
    name, explain, clients = cell
    path, body, _ = ENDPOINTS[name]
    body = {**body, "explain": explain}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=clients + 4)) as c:
        await asyncio.gather(*(c.post(path, json=body) for _ in range(min(clients, 8))))  # warm-up
        stop = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    status = str((await c.post(path, json=body)).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"rps": len(latencies) / wall, "p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], "n": len(latencies),
            "errors": sum(v for k, v in statuses.items() if k != "200"), "statuses": statuses}


def run_cells(url: str, cells: list, seconds: float, label: str) -> dict:
    out = {}
    for cell in cells:
        out[cell] = asyncio.run(load(url, cell, seconds))
        r = out[cell]
        print(f"{label:>8} {cell}: {r['rps']:.1f} req/s p50 {r['p50']:.1f} p99 {r['p99']:.1f} errors {r['errors']}",
              flush=True)
    return out


def wait_up(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{url}/v1/sentiment", json=SENTIMENT, timeout=30).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def _key(cell: tuple) -> str:
    return f"{cell[0]}|{int(cell[1])}|{cell[2]}"


def _cell(key: str) -> tuple:
    name, explain, clients = key.split("|")
    return name, bool(int(explain)), int(clients)


# -------------------------------------------------------------------------------- the two sides
def run_baseline(bundle: Path, section, cells: list, seconds: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "serve.baseline_app", str(bundle), str(port), "--explain-method",
           section.explain_method, "--explain-steps", str(section.explain_steps)] + ([] if section.bf16 else ["--fp32"])
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_up(url)
        return {_key(c): r for c, r in run_cells(url, cells, seconds, "baseline").items()}
    finally:
        proc.terminate()
        proc.wait(30)


def run_serve_child(bundle: Path, overrides: dict, env: dict, cells: list, seconds: float, work: Path) -> dict:
    """One Serve configuration in a child process (its own Ray cluster and Serve environment)."""
    spec = work / "child.json"
    result = work / "child-result.json"
    result.unlink(missing_ok=True)
    spec.write_text(json.dumps({"bundle": str(bundle), "overrides": overrides, "cells": [_key(c) for c in cells],
                                "seconds": seconds}))
    subprocess.run([sys.executable, __file__, "--child", str(spec), "--child-result", str(result)], cwd=ROOT,
                   env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, check=True, timeout=900)
    return json.loads(result.read_text())


def child(spec_path: Path, result_path: Path) -> None:
    import ray
    from ray import serve

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    spec = json.loads(spec_path.read_text())
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    section = ServeSection.model_validate({**spec["overrides"], "http": {"host": "127.0.0.1", "port": port}})
    t0 = time.perf_counter()
    deploy(serve_config(section, Path(spec["bundle"])))
    url = f"http://127.0.0.1:{port}"
    wait_up(url)
    up_s = time.perf_counter() - t0
    cells = {_key(c): r for c, r in run_cells(url, [_cell(k) for k in spec["cells"]], spec["seconds"],
                                               "serve").items()}
    stats = httpx.get(f"{url}/v1/stats").json()["backbone"]
    info = httpx.get(f"{url}/v1/models").json()
    from serve.app import backbone_cpus, node_cpus

    result = {"cells": cells, "stats": {k: v for k, v in stats.items() if k != "recent"}, "bf16": info["bf16"],
              "explain_method": info["explain_method"], "up_s": round(up_s, 1),
              "backbone_cpus": backbone_cpus(section, node_cpus()),
              "env": {k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE_")}}
    serve.shutdown()
    ray.shutdown()
    result_path.write_text(json.dumps(result))


def batching_ceiling(bundle: Path, threads: int, rounds: int = 20, batch: int = 16) -> dict:
    """What batching can buy on this CPU at most, with no HTTP, no Ray and no queueing: the engine's queries/s
    on `batch` sentiment queries (no explanations) as one call, against the same queries one call each (what
    the plain app does per request), torch on `threads` threads, bf16 as served."""
    import torch

    from serve.engine import Engine
    from serve.preprocess import Query

    torch.set_num_threads(threads)
    engine = Engine(bundle, bf16=True)
    queries = [Query(engine.pre.text_row(SENTIMENT["text"]), ("sentiment",), None) for _ in range(batch)]
    for _ in range(3):  # warm the kernels for both shapes
        engine.infer(queries)
        engine.infer(queries[:1])
    t0 = time.perf_counter()
    for _ in range(rounds):
        engine.infer(queries)
    batched = rounds * batch / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(rounds):
        for q in queries:
            engine.infer([q])
    single = rounds * batch / (time.perf_counter() - t0)
    return {"threads": threads, "batch": batch, "batched_qps": round(batched, 1), "single_qps": round(single, 1),
            "ratio": round(batched / single, 2), "bf16": engine.bf16}


# ---------------------------------------------------------------------------------------- report
def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def write_report(path: Path, work: Path) -> None:
    mains = [json.loads(p.read_text()) for p in sorted(work.glob("main*.json"))]  # main.json = the default
    steps = json.loads((work / "steps.json").read_text()) if (work / "steps.json").exists() else None
    lines = ["# Serve benchmark: Ray Serve app vs plain FastAPI + uvicorn", "",
             f"- Machine: {os.cpu_count()} CPUs ({_cpu()}), Python {platform.python_version()}, no GPU; the load "
             "generator runs on the same 2 cores.",
             "- Closed loop: each client sends its next request when the previous answer arrives; up to 8 warm-up "
             "requests per cell, then the cell's seconds.", ""]
    for main in mains:
        lines += _main_section(main)
    if steps:
        lines += _steps_section(steps)
    if (work / "ceiling.json").exists():
        lines += _ceiling_section(json.loads((work / "ceiling.json").read_text()))
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if "\n## Analysis" in old:  # written by hand after a run: kept
        lines += [old[old.index("\n## Analysis") + 1:].rstrip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def _main_section(main: dict) -> list[str]:
    s, b = main["serve"], main["baseline"]
    lines = [f"## Side by side: layout {main.get('layout', 'one_hop')}", "",
             f"- Date: {main['date']}; command: `{main['command']}`",
             f"- Model: {main['model']}",
             f"- Both: bf16={s['bf16']}, explanations `{s['explain_method']}` (explain: true) or none "
             "(explain: false). Baseline: `serve/baseline_app.py`, one uvicorn process, sync endpoints (its "
             "thread pool runs concurrent requests), `Engine.infer` per request, torch on every core.",
             f"- finmm Serve: layout {main.get('layout', 'one_hop')}"
             f"{''.join(f', {k}={v}' for k, v in s.get('env', {}).items())}, otherwise the defaults (what "
             f"`finmm serve` runs); backbone "
             f"{s['backbone_cpus']} CPU; batches during the run: mean {s['stats']['mean_batch_size']:.1f}, max "
             f"{s['stats']['max_batch_size']}.", "",
             "| endpoint | explain | clients | baseline req/s | serve req/s | ratio | baseline p50 ms | serve p50 ms "
             "| p50 diff ms | baseline p99 ms | serve p99 ms | serve p99/p50 | errors (b/s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for key, bv in b.items():
        name, explain, n = _cell(key)
        sv = s["cells"][key]
        ratio = sv["rps"] / bv["rps"] if bv["rps"] else float("nan")
        lines.append(f"| {name} | {'on' if explain else 'off'} | {n} | {bv['rps']:.1f} | {sv['rps']:.1f} | "
                     f"{ratio:.2f}x | {bv['p50']:.1f} | {sv['p50']:.1f} | {sv['p50'] - bv['p50']:+.1f} | "
                     f"{bv['p99']:.1f} | {sv['p99']:.1f} | {sv['p99'] / sv['p50']:.1f} | "
                     f"{bv['errors']}/{sv['errors']} |")
        tag = f"{name}, explain {'on' if explain else 'off'}"
        if n == 32:
            verdicts.append(f"- {tag}, 32 clients: {ratio:.2f}x the baseline's throughput (target >= 3x): "
                            f"{'met' if ratio >= 3 else 'MISSED'}.")
        if n == 1:
            over = sv["p50"] - bv["p50"]
            verdicts.append(f"- {tag}, 1 client: p50 {sv['p50']:.1f} ms vs {bv['p50']:.1f} ms, {over:+.1f} ms "
                            f"(target <= +10 ms): {'met' if over <= 10 else 'MISSED'}.")
        if n == 64:
            ok = sv["errors"] == 0 and sv["p99"] < 3 * sv["p50"]
            verdicts.append(f"- {tag}, 64 clients: {sv['errors']} errors, p99 {sv['p99']:.0f} ms = "
                            f"{sv['p99'] / sv['p50']:.1f} x p50 (target: no errors, < 3x): "
                            f"{'met' if ok else 'MISSED'}.")
    return lines + ["", "### Targets", "", *verdicts, ""]


def _steps_section(steps: dict) -> list[str]:
    lines = ["## One row per change", "",
             f"- Date: {steps['date']}; command: `{steps['command']}`; model: {steps['model']}",
             "- Each row adds its change to the rows above it and runs in a fresh local 2-CPU Ray cluster. Cells: "
             "sentiment without explanations at 1 and 32 clients.", "",
             "| # | change | sentiment 1 client p50 ms | sentiment 32 clients req/s | sentiment 32 clients p50 ms "
             "| mean batch | backbone CPU | errors |", "|---|---|---|---|---|---|---|---|"]
    for i, row in enumerate(steps["rows"]):
        c = row["result"]["cells"]
        one, many = c[_key(STEP_CELLS[0])], c[_key(STEP_CELLS[1])]
        errors = sum(v["errors"] for v in c.values())
        lines.append(f"| {i} | {row['change']} | {one['p50']:.1f} | {many['rps']:.1f} | {many['p50']:.0f} | "
                     f"{row['result']['stats']['mean_batch_size']:.1f} | {row['result']['backbone_cpus']} | {errors} |")
    if steps.get("baseline"):
        bl = steps["baseline"]
        one, many = (bl[_key(c)] for c in STEP_CELLS)
        lines.append(f"| - | baseline (plain FastAPI, same engine) | {one['p50']:.1f} | {many['rps']:.1f} | "
                     f"{many['p50']:.0f} | 1 | all | 0 |")
    return lines + [""]


def _ceiling_section(ceiling: dict) -> list[str]:
    lines = ["## What batching can buy on this CPU", "",
             f"- Date: {ceiling['date']}; command: `{ceiling['command']}`; model: {ceiling['model']}",
             "- In one process, no HTTP, no Ray, no queueing: `Engine.infer` on 16 sentiment queries (no "
             "explanations) as one call against the same 16 one call each, as the plain app runs them. The ratio "
             "is the most any batching server can gain over one forward per request here, before its own costs.",
             "", "| torch threads | one call of 16: queries/s | 16 calls of 1: queries/s | ratio | bf16 |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | {r['batched_qps']} | {r['single_qps']} | {r['ratio']}x | {r['bf16']} |"
              for r in ceiling["runs"]]
    return lines + [""]


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", help="A finetuned bundle with sentiment and credit_risk heads. Default: a "
                                        "`small` bundle with random heads, built once under --work.")
    ap.add_argument("--part", choices=("main", "steps", "ceiling", "all", "report"), default="all")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", default=str(ROOT / "docs/benchmarks/serve.md"))
    ap.add_argument("--work", default=str(ROOT / "artifacts/bench/serve"))
    ap.add_argument("--layout", choices=("one_hop", "split", "fused"), help="serve.layout of the main comparison. "
                                                                        "Default: the config's default (one_hop).")
    ap.add_argument("--serve-env", action="append", default=[], metavar="NAME=VALUE",
                    help="A Serve start-up switch for the main comparison (e.g. RAY_SERVE_ENABLE_HA_PROXY=1).")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(Path(args.child), Path(args.child_result))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.part == "report":
        return write_report(Path(args.out), work)
    if args.model_dir:
        bundle, model = Path(args.model_dir).resolve(), f"finetuned bundle {Path(args.model_dir).resolve()}"
        check_heads(bundle)
    else:
        bundle = work / "bundle"
        if not (bundle / "model.safetensors").exists():
            import ray

            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            bundle = build_small_bundle(work)
            ray.shutdown()
        model = "`small` preset (d=384, 6 layers), text path + encoder from all-MiniLM-L6-v2, heads random"
        check_heads(bundle)
    from serve.settings import ServeSection

    command = "python bench/serve.py " + " ".join(sys.argv[1:])
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.part in ("main", "all"):
        overrides = {**FINAL[0], **({"layout": args.layout} if args.layout else {})}
        section = ServeSection.model_validate(overrides)
        baseline = run_baseline(bundle, section, MAIN_CELLS, args.seconds)
        serve_env = {**FINAL[1], **dict(kv.split("=", 1) for kv in args.serve_env)}
        served = run_serve_child(bundle, overrides, serve_env, MAIN_CELLS, args.seconds, work)
        name = "-".join(["main", *([args.layout] if args.layout else []),
                         *(kv.split("=")[0].removeprefix("RAY_SERVE_").lower() for kv in args.serve_env)]) + ".json"
        (work / name).write_text(json.dumps({"date": date, "command": command, "model": model,
                                                    "layout": section.layout, "baseline": baseline,
                                                    "serve": served}, indent=1))
    if args.part in ("ceiling", "all"):
        (work / "ceiling.json").write_text(json.dumps({"date": date, "command": command, "model": model, "runs": [
            batching_ceiling(bundle, t) for t in (1, os.cpu_count() or 1)]}, indent=1))
    if args.part in ("steps", "all"):
        rows = []
        env: dict = {}
        for change, overrides, extra_env in STEPS:
            env = {k: v for k, v in {**env, **extra_env}.items() if v is not None}
            rows.append({"change": change, "overrides": overrides, "env": dict(env),
                         "result": run_serve_child(bundle, overrides, env, STEP_CELLS, args.seconds, work)})
        baseline = run_baseline(bundle, ServeSection(), STEP_CELLS, args.seconds)
        (work / "steps.json").write_text(json.dumps({"date": date, "command": command, "model": model,
                                                     "rows": rows, "baseline": baseline}, indent=1))
    write_report(Path(args.out), work)


if __name__ == "__main__":
    main()
