"""`finmm opinion replay` (StockNet's tweets, in time order, through the running monitor) and `finmm evaluate
--task opinion` (IC / Rank IC of the replayed daily index against next-day returns, evaluation/opinion.py).

Replay posts batches of `--batch` items to `POST /v1/opinion/items` in time order, one batch in flight at a
time (so arrival order is time order). A batch that fails (connection lost, 5xx: a monitor replica being
replaced) is sent again after a backoff, until `--retry-s` has passed: each item has its id
(`stocknet:<TICKER>:<line>`), so an item the monitor had already stored answers `duplicate` and counts once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

RETRY_STATUSES = (500, 502, 503, 504)
"""Statuses a batch is sent again on (a replica being replaced, the proxy without a route yet)."""


def post_items(client, items: list[dict], retry_s: float = 120.0, headers: dict | None = None) -> dict:
    """POST one batch, again on a transport error or a RETRY_STATUSES answer until `retry_s` has passed;
    a 4xx is raised at once (the batch itself is wrong)."""
    import httpx

    deadline, wait = time.monotonic() + retry_s, 0.25
    while True:
        try:
            r = client.post("/v1/opinion/items", json={"items": items}, headers=headers)
            if r.status_code not in RETRY_STATUSES:
                r.raise_for_status()
                return r.json()
            reason = f"HTTP {r.status_code}"
        except httpx.TransportError as exc:
            reason = type(exc).__name__
        if time.monotonic() + wait > deadline:
            raise RuntimeError(f"a batch of {len(items)} items failed for {retry_s:.0f} s (last: {reason})")
        time.sleep(wait)
        wait = min(wait * 2, 4.0)


def replay(url: str, items: Iterable[dict], batch: int = 64, api_key: str | None = None, retry_s: float = 120.0,
           on_batch: Callable[[int, Counter], None] | None = None) -> dict:
    """Send `items` (in the order given) in batches; counts of statuses, items/s and latency per batch."""
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    statuses: Counter = Counter()
    latencies: list[float] = []
    items = list(items)
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client:
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            t = time.perf_counter()
            reply = post_items(client, chunk, retry_s, headers)
            latencies.append(time.perf_counter() - t)
            statuses.update(r["status"] for r in reply["results"])
            if on_batch is not None:
                on_batch(i + len(chunk), statuses)
    wall = time.perf_counter() - t0
    return {"items": len(items), "statuses": dict(statuses), "wall_s": round(wall, 2),
            "items_per_s": round(len(items) / wall, 1) if wall > 0 else None,
            "batch_ms_p50": round(1000 * sorted(latencies)[len(latencies) // 2], 1) if latencies else None}


def stocknet_root(settings) -> Path:
    from actors.data_root import resolve_data_root

    return resolve_data_root(settings.data.root) / "stocknet"


def run_replay(settings, dataset: str, split: str, console, url: str | None = None, batch: int = 64,
               tickers: list[str] | None = None, limit: int | None = None, api_key: str | None = None) -> int:
    from actors.opinion_stream import stocknet_items

    if dataset != "stocknet":
        console.print(f"unknown dataset {dataset!r}: the opinion replay streams stocknet's tweets")
        return 2
    items = stocknet_items(stocknet_root(settings), split, only=tickers, limit=limit)
    http = settings.serve.http
    url = url or f"http://{'127.0.0.1' if http.host == '0.0.0.0' else http.host}:{http.port}"
    console.print(f"replaying {len(items)} {dataset} {split} tweets ({items[0]['time']} .. {items[-1]['time']}) "
                  f"to {url} in batches of {batch}")
    step = max(len(items) // 20, batch)
    last = [0]

    def progress(done: int, statuses: Counter) -> None:
        if done - last[0] >= step or done == len(items):
            last[0] = done
            console.print(f"  {done}/{len(items)}  {dict(statuses)}")

    try:
        summary = replay(url, items, batch, api_key, on_batch=progress)
    except Exception as exc:  # the server is not up, or refused a batch
        console.print(f"replay failed: {exc}")
        return 1
    console.print(json.dumps(summary))
    console.print("the index is in the server's serve.state_dir; `finmm evaluate --task opinion` reads it "
                  f"(this config's: {settings.serve.state_dir})")
    return 0


def run_opinion_evaluate(settings, console, split: str = "test", state_dir: Path | None = None) -> int:
    """IC / Rank IC of the monitor's daily index (every shard's file under serve.state_dir) vs returns;
    writes <reports>/opinion.json and opinion.md."""
    import sqlite3
    import tempfile

    from evaluation.opinion import LABELS, SIGNALS, evaluate_opinion
    from finmm.evaluate_command import report_dir

    state = Path(state_dir or settings.serve.state_dir)
    shards = sorted(state.glob("opinion-*-of-*.sqlite"))
    if not shards:
        console.print(f"no opinion state under {state}: run `finmm serve`, then `finmm opinion replay --dataset "
                      "stocknet --split test`")
        return 2
    with tempfile.TemporaryDirectory() as tmp:  # one file with every shard's windows (each shard owns its tickers)
        merged = Path(tmp) / "opinion.sqlite"
        from actors.opinion import connect

        con = connect(merged)
        for i, shard in enumerate(shards):
            con.execute(f"ATTACH DATABASE ? AS s{i}", (f"file:{shard}?mode=ro",))
            for table in ("opinion_window", "opinion_carry"):
                con.execute(f"INSERT INTO {table} SELECT * FROM s{i}.{table}")
            con.execute(f"DETACH DATABASE s{i}")
        con.close()
        try:
            report = evaluate_opinion(merged, stocknet_root(settings), split, settings.serve.opinion.ew_decay)
        except sqlite3.Error as exc:
            console.print(f"cannot read the opinion state: {exc}")
            return 1
    report["state"] = str(state)
    out = report_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    (out / "opinion.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    lines = [f"# Opinion index vs returns (StockNet {split})", "",
             f"{report['ticker_days']} ticker-days, {report['ticker_days_with_tweets']} with tweets the day before; "
             f"days with at least {report['min_tickers']} tickers count.", ""]
    for label in LABELS:
        lines += [f"## label `{label}`", "", "| signal | IC | IC sd | ICIR | IC t | Rank IC | Rank IC t | days |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in SIGNALS:
            r = report["labels"][label][s]
            lines.append(f"| {s} | {r['ic']:.4f} | {r['ic_std']:.4f} | {r['icir']:.3f} | {r['ic_t']:.2f} | "
                         f"{r['rank_ic']:.4f} | {r['rank_ic_t']:.2f} | {r['days']} |")
        lines.append("")
    (out / "opinion.md").write_text("\n".join(lines), encoding="utf-8")
    console.print("\n".join(lines))
    console.print(f"wrote {out / 'opinion.json'} and {out / 'opinion.md'}")
    return 0


# --------------------------------------------------------------------------------------------- CLI
def _cli():
    """`finmm opinion ...` (registered by finmm/cli.py)."""
    import typer
    from rich.console import Console

    from finmm.config import ConfigError, load_settings

    opinion_app = typer.Typer(help="The opinion monitor: stream a data set's texts through the running server.",
                              no_args_is_help=True)

    @opinion_app.command("replay")
    def opinion_replay(
        overrides: list[str] | None = typer.Argument(None, help="Dotted overrides such as serve.http.port=9001.",
                                                     show_default=False),
        dataset: str = typer.Option("stocknet", "--dataset", help="The data set whose texts to stream (stocknet)."),
        split: str = typer.Option("test", "--split", help="train, val or test (EVAL.md's dates)."),
        url: str | None = typer.Option(None, "--url", help="The server (default serve.http.host:port)."),
        batch: int = typer.Option(64, "--batch", min=1, help="Items per POST /v1/opinion/items (at most "
                                  "serve.opinion.max_items)."),
        tickers: str | None = typer.Option(None, "--tickers", help="Only these tickers, comma-separated."),
        limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first LIMIT items in time order."),
        api_key: str | None = typer.Option(None, "--api-key", envvar="FINMM_API_KEY",
                                           help="API key, when the server has keys ($FINMM_API_KEY)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Config file (default ./ray_config.yaml)."),
    ) -> None:
        """Stream the split's texts in time order through POST /v1/opinion/items of the running server."""
        console = Console()
        try:
            settings = load_settings(config, overrides or [])
        except ConfigError as exc:
            Console(stderr=True).print(f"error: {exc}", highlight=False)
            raise typer.Exit(2) from None
        names = [t.strip() for t in tickers.split(",") if t.strip()] if tickers else None
        raise typer.Exit(run_replay(settings, dataset, split, console, url, batch, names, limit, api_key))

    return opinion_app


opinion_app = _cli()
