"""The opinion monitor in Serve: sharded `OpinionMonitor` deployments that own the state of the tickers hashed
to them (actors/opinion.py's OpinionStore: one SQLite file each, or with `serve.opinion.backend: postgresql` one
schema each in the server at $FINMM_DATABASE_URL), and `OpinionFront`, the ingress side that scores items
through the Backbone and routes them to their shard.

    POST /v1/opinion/items -> Ingress: OpinionFront.ingest
        each text -> Backbone.infer (sentiment head, @serve.batch with every other request)
        score = P(positive) - P(negative), label = argmax
        items grouped by shard (crc32(ticker) % shards) -> OpinionMonitor<i>.ingest (one transaction each)

Scoring happens in the ingress, before the shard: a monitor replica does database work only, so it restarts in
well under a second, and a retried shard call costs no second forward. Each shard runs one replica (one writer
per shard: its batches fold windows one transaction at a time). A shard call is retried when its replica dies
(`retry_idempotent`): an item's id makes ingest exactly-once, so a batch committed just before the replica died
answers `duplicate` the second time and the index is unchanged.
"""

from __future__ import annotations

import asyncio
import zlib
from datetime import UTC, datetime
from pathlib import Path

from ray import serve

from actors.opinion import MonitorParams, OpinionStore, ScoredItem, item_id
from actors.sql_store import server_url
from serve.deployments import retry_idempotent
from serve.preprocess import InputError, Query
from serve.tasks import SENTIMENT_LABELS

HEAD = "sentiment"


def shard_of(ticker: str, shards: int) -> int:
    """The monitor shard that owns `ticker` (stable across processes and restarts)."""
    return zlib.crc32(ticker.encode()) % shards


def shard_names(shards: int) -> list[str]:
    return [f"OpinionMonitor{i}" for i in range(shards)]


def shard_path(state_dir: str | Path, shard: int, shards: int) -> Path:
    return Path(state_dir) / f"opinion-{shard}-of-{shards}.sqlite"


def shard_namespace(shard: int, shards: int) -> str:
    """The schema a shard's tables live in with `serve.opinion.backend: postgresql` (its file's name, as SQL)."""
    return f"finmm_opinion_{shard}_of_{shards}"


def monitor_params(section) -> MonitorParams:
    """MonitorParams from `serve.opinion` (serve.settings.OpinionSettings)."""
    o = section.opinion
    return MonitorParams(windows_s=tuple(o.windows_s), ew_decay=o.ew_decay, alert_k=o.alert_k,
                         alert_history=o.alert_history, alert_min_items=o.alert_min_items,
                         retain_windows=o.retain_windows)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@serve.deployment(name="OpinionMonitor", num_replicas=1)
class OpinionMonitor:
    """One shard of the opinion state: the OpinionStore in the SQLite file at `path`, or (`backend: postgresql`)
    in schema `namespace` of the server at $FINMM_DATABASE_URL, read here, in the replica. Sync methods (Serve
    runs them in a thread pool; the store takes one transaction at a time)."""

    def __init__(self, shard: int, path: str, params: dict, backend: str = "sqlite", namespace: str | None = None):
        self.shard = shard
        monitor = MonitorParams(**{**params, "windows_s": tuple(params["windows_s"])})
        self.store = (OpinionStore(server_url(), monitor, namespace) if backend == "postgresql" else
                      OpinionStore(path, monitor))

    def ingest(self, items: list[dict]) -> list[dict]:
        """Scored items -> per item {status, index}: accepted / duplicate / late, and its ticker's index at the
        item's windows after the batch (committed before this returns)."""
        scored = [ScoredItem(it["id"], it["ticker"], it["t"], it["score"], it["label"]) for it in items]
        statuses = self.store.ingest(scored)
        latest: dict[tuple, list[dict]] = {}
        out = []
        for it, status in zip(scored, statuses, strict=True):
            key = (it.ticker, *(int(it.t // w) for w in self.store.p.windows_s))
            if key not in latest:
                latest[key] = self.store.latest(it.ticker, it.t)
            out.append({"status": status, "index": latest[key]})
        return out

    def series(self, ticker: str, window_s: int, t_from: float | None, t_to: float | None) -> list[dict]:
        return self.store.series(ticker, window_s, t_from, t_to)

    def alerts(self, since: float | None, limit: int, ticker: str | None = None,
               window_s: int | None = None) -> list[dict]:
        rows = self.store.alerts(since, limit if ticker is None else 1_000_000)
        if ticker is not None:
            rows = [a for a in rows if a["ticker"] == ticker and (window_s is None or a["window_s"] == window_s)]
        return rows[:limit]

    def tickers(self) -> list[str]:
        return self.store.tickers()

    def ready(self) -> bool:
        return True


class OpinionFront:
    """The ingress side of /v1/opinion: score, route to shards, merge. `infer` answers one Query through the
    backbone (serve.deployments.backbone_caller); `monitors` are the shards' handles, in shard order."""

    def __init__(self, pre, infer, monitors: list):
        self.pre, self.infer, self.monitors = pre, infer, monitors

    def _shard(self, ticker: str):
        return self.monitors[shard_of(ticker, len(self.monitors))]

    async def ingest(self, items: list[dict]) -> dict:
        """items (validated: ticker, time as a datetime, text, source, id) -> {"results": [...]} or
        {"error": ...} when a text cannot be read (the whole batch is refused, as for schema errors)."""
        try:
            rows = [self.pre.text_row(it["text"], ("body", "items", i, "text")) for i, it in enumerate(items)]
        except InputError as exc:
            return {"error": exc.to_dict()}
        outs = await asyncio.gather(*(self.infer(Query(r, (HEAD,), None)) for r in rows))
        scored = []
        for it, out in zip(items, outs, strict=True):
            probs = [float(p) for p in out["heads"][HEAD]["probs"]]
            k = max(range(len(probs)), key=probs.__getitem__)
            t = it["time"].timestamp()
            scored.append({"id": it.get("id") or item_id(it["ticker"], t, it["text"], it.get("source")),
                           "ticker": it["ticker"], "t": t, "score": probs[2] - probs[0], "label": SENTIMENT_LABELS[k],
                           "probabilities": dict(zip(SENTIMENT_LABELS, probs, strict=True))})
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(scored):
            groups.setdefault(shard_of(s["ticker"], len(self.monitors)), []).append(i)

        async def to_shard(shard: int, idx: list[int]):
            batch = [{k: scored[i][k] for k in ("id", "ticker", "t", "score", "label")} for i in idx]
            return idx, await retry_idempotent(lambda: self.monitors[shard].ingest.remote(batch))

        results: list[dict | None] = [None] * len(scored)
        for idx, replies in await asyncio.gather(*(to_shard(s, idx) for s, idx in groups.items())):
            for i, reply in zip(idx, replies, strict=True):
                s = scored[i]
                results[i] = {"id": s["id"], "ticker": s["ticker"], "time": iso(s["t"]), "label": s["label"],
                              "score": s["score"], "probabilities": s["probabilities"], "status": reply["status"],
                              "index": [_point(p) for p in reply["index"]]}
        return {"results": results, "batch_size": max((o["batch_size"] for o in outs), default=1)}

    async def series(self, ticker: str, window_s: int, t_from: float | None, t_to: float | None) -> dict:
        shard = self._shard(ticker)
        points, alerts = await asyncio.gather(
            retry_idempotent(lambda: shard.series.remote(ticker, window_s, t_from, t_to)),
            retry_idempotent(lambda: shard.alerts.remote(None, 1000, ticker, window_s)))
        lo, hi = t_from if t_from is not None else float("-inf"), t_to if t_to is not None else float("inf")
        return {"ticker": ticker, "window_s": window_s, "points": [_point(p) for p in points],
                "alerts": [_alert(a) for a in alerts if lo <= a["start"] <= hi]}

    async def alerts(self, since: float | None, limit: int) -> dict:
        per_shard = await asyncio.gather(*(retry_idempotent(lambda m=m: m.alerts.remote(since, limit))
                                           for m in self.monitors))
        rows = sorted((a for rows in per_shard for a in rows),
                      key=lambda a: (-a["raised_at"], a["ticker"], a["window_s"], a["start"]))
        return {"alerts": [_alert(a) for a in rows[:limit]]}

    async def tickers(self) -> dict:
        per_shard = await asyncio.gather(*(retry_idempotent(lambda m=m: m.tickers.remote()) for m in self.monitors))
        return {"tickers": sorted(t for ts in per_shard for t in ts)}


def _point(p: dict) -> dict:
    return {**p, "start": iso(p["start"])}


def _alert(a: dict) -> dict:
    return {**a, "start": iso(a["start"]), "raised_at": iso(a["raised_at"])}


def bind_monitors(section, options: dict) -> list:
    """The shards as bound deployments, `OpinionMonitor0..` (one replica each): files under serve.state_dir, or
    schemas of the server store (serve.opinion.backend)."""
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in monitor_params(section).__dict__.items()}
    n, backend = section.opinion.shards, section.opinion.backend
    return [OpinionMonitor.options(name=name, **options).bind(i, str(shard_path(section.state_dir, i, n)), params,
                                                              backend, shard_namespace(i, n))
            for i, name in enumerate(shard_names(n))]
