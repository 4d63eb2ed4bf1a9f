"""Load generator for the finmm HTTP API: loopback only, bounded clients, bounded time, stops by itself.

Closed loop: each of `--clients` async clients sends its next request when the previous answer arrives, for
`--seconds`, over a mix of all four endpoints with realistic bodies (credit applications, OHLCV windows with
news, finance sentences in English and Chinese, customer messages, some in a conversation). Reports requests,
throughput, errors by status and p50/p95/p99 latency, overall and per endpoint.

    python bench/load.py --url http://127.0.0.1:8000 --clients 32 --seconds 60
    python bench/load.py --clients 32 --seconds 60        # starts its own app on a tiny bundle
    python bench/load.py --bundle small --json out.json    # small preset (MiniLM-initialised), JSON summary

`run_load` is importable (the reliability tests run it during faults and read its per-request records).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

MAX_CLIENTS = 256
MAX_SECONDS = 600.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ENDPOINTS = ("/v1/credit-risk", "/v1/stock-movement", "/v1/sentiment", "/v1/customer-service")

SENTENCES = [
    "The company reported quarterly profits well above analyst expectations",
    "Operating margin fell to 3 percent as raw material costs rose",
    "The board approved a dividend unchanged from last year",
    "Net sales decreased by 12 % in the third quarter",
    "公司第三季度净利润同比增长百分之二十",
    "受原材料价格上涨影响，毛利率明显下降",
    "Shares jumped 8% after the merger was announced 🚀",
    "Guidance was cut again; investors are not happy",
]
MESSAGES = [
    "I lost my card, what should I do?", "My transfer has not arrived yet", "How do I top up with Apple Pay?",
    "Why was I charged a fee for this withdrawal?", "and how long will that take?", "Can I change my PIN?",
    "The exchange rate on my payment looks wrong", "我的卡被吞了怎么办",
]
PURPOSES = ["debt_consolidation", "credit_card", "car", "home_improvement", "small_business", "other"]


def credit_body(rng: random.Random) -> dict:
    features = {"loan_amnt": rng.choice([1000, 5000, 12000, 25000]), "int_rate": round(rng.uniform(.05, .25), 4),
                "annual_inc": rng.randint(20_000, 150_000), "dti": round(rng.uniform(0, 35), 1),
                "grade": rng.choice("ABCDEFG"), "purpose": rng.choice(PURPOSES),
                "home_ownership": rng.choice(["RENT", "OWN"])}
    return {"features": features,
            "text": f"title: {rng.choice(PURPOSES).replace('_', ' ')} | employer: {rng.choice(['Teacher', 'Nurse'])}",
            "explain": rng.random() < 0.5}


def stock_body(rng: random.Random) -> dict:
    price, bars = rng.uniform(20, 400), []
    for _ in range(rng.randint(8, 30)):
        close = max(price * (1 + rng.gauss(0, 0.02)), 1.0)
        bars.append([price, max(price, close) * 1.01, min(price, close) * 0.99, close, rng.randint(10_000, 900_000)])
        price = close
    return {"ticker": rng.choice(["AAPL", "MSFT", "BRK.A", "GOOG"]), "bars": bars,
            "texts": rng.sample(SENTENCES, rng.randint(0, 2)), "explain": rng.random() < 0.5}


def sentiment_body(rng: random.Random) -> dict:
    if rng.random() < 0.3:
        return {"texts": rng.sample(SENTENCES, rng.randint(2, 4)), "explain": rng.random() < 0.5}
    return {"text": rng.choice(SENTENCES), "explain": rng.random() < 0.5}


def customer_body(rng: random.Random) -> dict:
    body = {"message": rng.choice(MESSAGES)}
    if rng.random() < 0.5:
        body["conversation_id"] = f"load-{rng.randint(0, 200)}"
    return body


BODIES = {"/v1/credit-risk": credit_body, "/v1/stock-movement": stock_body, "/v1/sentiment": sentiment_body,
          "/v1/customer-service": customer_body}


@dataclass
class LoadResult:
    url: str
    clients: int
    seconds: float
    wall_s: float = 0.0
    t0: float = 0.0
    """time.perf_counter() at the start of the run (records are relative to it)."""
    records: list[tuple[float, float, str, int]] = field(default_factory=list)
    """(start, end) in seconds from the start of the run, endpoint, HTTP status (0: no answer)."""
    exceptions: dict[int, str] = field(default_factory=dict)
    """Index into `records` -> the httpx exception class of a request with no answer (status 0): ConnectError
    was never accepted; ReadError, RemoteProtocolError or ReadTimeout were sent and got no answer."""

    def summary(self, start: float = 0.0, end: float = float("inf"), overlapping: bool = False) -> dict:
        """Figures over the requests that started in [start, end), or with `overlapping`, that were in flight at
        any moment of it (started before `end` and answered after `start`)."""
        if overlapping:
            rows = [r for r in self.records if r[0] < end and r[1] >= start]
        else:
            rows = [r for r in self.records if start <= r[0] < end]
        out = _figures(rows)
        out["rps"] = round(len(rows) / max(min(end, self.wall_s) - start, 1e-9), 1)
        out["per_endpoint"] = {e: _figures([r for r in rows if r[2] == e]) for e in ENDPOINTS}
        return out


def _figures(rows: list) -> dict:
    lat = sorted((r[1] - r[0]) * 1000 for r in rows)
    errors: dict[str, int] = {}
    for r in rows:
        if r[3] != 200:
            errors[str(r[3])] = errors.get(str(r[3]), 0) + 1

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else 0.0

    return {"requests": len(rows), "errors": sum(errors.values()), "errors_by_status": errors,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99)}


def check_target(url: str, clients: int, seconds: float) -> None:
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"load is only sent to loopback addresses ({', '.join(sorted(LOOPBACK))}), not {host!r}")
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be 1..{MAX_CLIENTS}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}]")


async def run_load(url: str, clients: int = 32, seconds: float = 60.0, seed: int = 0,
                   timeout_s: float = 60.0, endpoints: tuple[str, ...] = ENDPOINTS) -> LoadResult:
    """Send the mix for `seconds` from `clients` closed-loop clients; every request is recorded."""
    check_target(url, clients, seconds)
    result = LoadResult(url, clients, seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        t0 = result.t0 = time.perf_counter()
        stop = t0 + seconds

        async def worker(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while time.perf_counter() < stop:
                path = endpoints[rng.randrange(len(endpoints))]
                body = BODIES[path](rng)
                start = time.perf_counter() - t0
                try:
                    status = (await client.post(path, json=body)).status_code
                except httpx.HTTPError as exc:
                    status = 0
                    result.exceptions[len(result.records)] = type(exc).__name__
                result.records.append((start, time.perf_counter() - t0, path, status))

        await asyncio.gather(*(worker(i) for i in range(clients)))
        result.wall_s = time.perf_counter() - t0
    return result


def wait_ready(url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")


def start_app(bundle: str, work: Path) -> tuple[str, Path]:
    """A local 2-CPU Ray cluster and the app on a free loopback port, over a tiny or small bundle."""
    import ray

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    if (work / "bundle" / "model.safetensors").exists():
        folder = work / "bundle"
    else:  # the serve tests' builder: prepare() a slice of the real data, random (or MiniLM) weights
        spec = importlib.util.spec_from_file_location("_serve_fixtures", ROOT / "tests" / "serve" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        small = bundle == "small"
        folder = module.build_bundle(work, preset=bundle, init_from_minilm=small, max_rows=256 if small else 32)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    deploy(serve_config(ServeSection(http={"host": "127.0.0.1", "port": port}), folder))
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    return url, folder


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="A running app (loopback). Default: start one on a local Ray cluster.")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--bundle", choices=("tiny", "small"), default="tiny", help="Preset of the bundle it builds.")
    ap.add_argument("--work", default=str(ROOT / "artifacts" / "bench" / "load"))
    ap.add_argument("--json", help="Also write the summary here.")
    args = ap.parse_args(argv)
    check_target(args.url or "http://127.0.0.1", args.clients, args.seconds)
    started_app = args.url is None
    url, bundle = (args.url, None) if args.url else start_app(args.bundle, Path(args.work) / args.bundle)
    try:
        asyncio.run(run_load(url, clients=min(args.clients, 4), seconds=min(3.0, args.seconds), seed=99))  # warm-up
        result = asyncio.run(run_load(url, clients=args.clients, seconds=args.seconds))
    finally:
        if started_app:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    summary = {"url": url, "clients": args.clients, "seconds": args.seconds,
               "bundle": str(bundle) if bundle else "external", "preset": args.bundle if started_app else None,
               "wall_s": round(result.wall_s, 1), **result.summary()}
    write_summary(summary, args.json)
    return summary


def write_summary(summary: dict, path: str | None) -> None:
    """Print a bench's JSON summary, and write it to `path` (its --json) when given."""
    text = json.dumps(summary, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


if __name__ == "__main__":
    main()
