"""The opinion monitor's state: per ticker (or topic) and window size, what the scored items of each window add
up to, kept in a SQLite file (WAL) or, as a shared server store, in PostgreSQL (actors/sql_store.py: one
SQLAlchemy Core code path for both). Pure Python, no Ray: serve/opinion.py wraps it in the actors that own a
shard of the tickers, and `finmm evaluate --task opinion` reads the SQLite files a replay wrote.

A window's row holds integer sums only: items, score in micro-units (score = P(positive) - P(negative),
rounded to 1e-6), positive and negative items. Sums of integers do not depend on the order they were added
in, so replaying the same items in another order within a window gives the same index, exactly. Everything
else (the window mean, the shares, the exponentially weighted index) is computed from those rows in time
order when read.

- **EW index** at window b: sum_j decay^(b-j) * score_j / sum_j decay^(b-j) * n_j over windows j <= b, items
  weighted alike (an empty window only ages the others).
- **Alert**: a window with at least `alert_min_items` items whose mean is more than `alert_k` standard
  deviations (sample sd) from the means of the up to `alert_history` non-empty windows before it (at least 3).
  One alert row per window, updated while its window fills.
- **Bounded memory**: per ticker and window size at most `retain_windows` windows are kept; older ones are
  folded into one carry row (the EW sums aged to the fold), so the EW index stays exact and the rows stay
  bounded. An item for a window already folded is counted as `late` and not added.
- **Exactly once**: an item's id (given, else a hash of ticker, time, text and source) is remembered while its
  window is kept; sending it again is a `duplicate` and changes nothing. A batch is one transaction, committed
  before it is acknowledged (SQLite synchronous=FULL; the server's commit): what was acknowledged survives a
  killed process.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from actors.sql_store import insert, open_engine, sqlite_engine, write

MICRO = 1_000_000
"""Scores are summed as integers in units of 1e-6."""
MIN_HISTORY = 3
"""Fewest earlier non-empty windows an alert is judged against."""

TABLES = sa.MetaData()
"""The store's tables (in a server store, in the shard's schema)."""


def _key(*names: str) -> list[sa.Column]:
    return [sa.Column(n, sa.Text if n == "ticker" else sa.BigInteger, primary_key=True) for n in names]


def _cols(kind, *names: str) -> list[sa.Column]:
    return [sa.Column(n, kind, nullable=False) for n in names]


SUMS = ("n", "score_micro", "n_pos", "n_neg")
"""A window row's sums: items, score in micro-units, positive and negative items."""
WINDOW = sa.Table("opinion_window", TABLES, *_key("ticker", "window_s", "start"),
                  *_cols(sa.BigInteger, *SUMS), sqlite_with_rowid=False)
"""Per ticker, window size and window start: the integer sums of its items."""
CARRY = sa.Table("opinion_carry", TABLES, *_key("ticker", "window_s"), *_cols(sa.BigInteger, "start"),
                 *_cols(sa.Double, "s", "w"), *_cols(sa.BigInteger, "n_total"), sqlite_with_rowid=False)
"""Per ticker and window size: the folded windows' EW sums, aged to the newest folded start."""
SEEN = sa.Table("opinion_seen", TABLES, sa.Column("item_id", sa.Text, primary_key=True),
                *_cols(sa.Text, "ticker"), *_cols(sa.Double, "t"), sa.Index("opinion_seen_by_time", "ticker", "t"),
                sqlite_with_rowid=False)
"""The ids of the items counted in a kept window (exactly-once ingest)."""
ALERT = sa.Table("opinion_alert", TABLES, *_key("ticker", "window_s", "start"),
                 *_cols(sa.Double, "mean", "z", "mu", "sd"), *_cols(sa.BigInteger, "n"), *_cols(sa.Double, "raised_at"),
                 sa.Index("opinion_alert_by_time", "raised_at"), sqlite_with_rowid=False)
"""One row per alerting window."""


@dataclass(frozen=True)
class MonitorParams:
    """What the monitor keeps and when it alerts (serve.opinion in ray_config.yaml documents each)."""

    windows_s: tuple[int, ...] = (3600, 86400)
    ew_decay: float = 0.8
    alert_k: float = 3.0
    alert_history: int = 20
    alert_min_items: int = 5
    retain_windows: int = 400


@dataclass(frozen=True)
class ScoredItem:
    """One item after the sentiment model: `t` in seconds since the epoch (UTC), label of the argmax."""

    id: str
    ticker: str
    t: float
    score: float
    label: str


def item_id(ticker: str, t: float, text: str, source: str | None) -> str:
    """An item's id when the sender gives none: the same item sent twice is recognised."""
    h = hashlib.sha256(f"{ticker}\x1f{t!r}\x1f{source or ''}\x1f{text}".encode()).hexdigest()
    return f"h:{h[:32]}"


def connect(path: str | Path) -> sqlite3.Connection:
    """A stdlib sqlite3 connection to the SQLite store at `path`, created with its tables (what `finmm evaluate
    --task opinion` merges the shard files with): WAL, synchronous=FULL, busy timeout 10 s."""
    open_engine(Path(path), TABLES).dispose()
    con = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA synchronous=FULL")
    return con


class OpinionStore:
    """The state of the tickers one monitor owns: in the SQLite file at `where`, or in schema `namespace` of the
    PostgreSQL server at URL `where` (actors/sql_store.py)."""

    def __init__(self, where: str | Path, params: MonitorParams = MonitorParams(), namespace: str | None = None):
        if params.retain_windows <= params.alert_history:
            raise ValueError("retain_windows must exceed alert_history (alerts read the kept windows)")
        self.p = params
        self.engine = open_engine(where, TABLES, namespace)
        self.lock = threading.RLock()
        """One transaction at a time: Serve runs an actor's sync methods in a thread pool, and two batches
        compacting the same ticker at once would both fold its old windows."""

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------- ingest
    def ingest(self, items: Iterable[ScoredItem], now: float | None = None) -> list[str]:
        """Add a batch in one transaction; each item's status: accepted, duplicate or late."""
        with self.lock, write(self.engine) as con:
            return self._ingest(con, items, time.time() if now is None else now)

    def _ingest(self, con: sa.Connection, items: Iterable[ScoredItem], now: float) -> list[str]:
        """The batch in three statements, then each touched window's alert and compaction: the folded starts of
        its tickers (an item at or before one is late), its ids (INSERT ... ON CONFLICT DO NOTHING RETURNING: an id
        not returned was seen), and the sums of its accepted items per window added to the window rows."""
        items = list(items)
        c = CARRY.c
        folded = {(t, w): s for t, w, s in con.execute(
            sa.select(c.ticker, c.window_s, c.start).where(c.ticker.in_({it.ticker for it in items})))}
        starts = [{w: int(it.t // w) * w for w in self.p.windows_s} for it in items]
        live = [i for i, it in enumerate(items)
                if not any(s <= folded.get((it.ticker, w), -math.inf) for w, s in starts[i].items())]
        new: set[str] = set()
        if live:
            rows = [{"item_id": items[i].id, "ticker": items[i].ticker, "t": items[i].t} for i in live]
            new = set(con.scalars(insert(con, SEEN).on_conflict_do_nothing().returning(SEEN.c.item_id), rows))
        statuses = ["late"] * len(items)
        sums: dict[tuple[str, int, int], list[int]] = {}
        for i in live:
            it = items[i]
            if it.id not in new:
                statuses[i] = "duplicate"
                continue
            new.discard(it.id)  # the same id again in this batch is a duplicate
            statuses[i] = "accepted"
            add = (1, round(it.score * MICRO), int(it.label == "positive"), int(it.label == "negative"))
            for w, s in starts[i].items():
                acc = sums.setdefault((it.ticker, w, s), [0, 0, 0, 0])
                acc[:] = [x + y for x, y in zip(acc, add, strict=True)]
        if sums:
            upsert = insert(con, WINDOW)
            con.execute(upsert.on_conflict_do_update(index_elements=list(WINDOW.primary_key),
                                                     set_={k: WINDOW.c[k] + upsert.excluded[k] for k in SUMS}),
                        [{"ticker": t, "window_s": w, "start": s, **dict(zip(SUMS, acc, strict=True))}
                         for (t, w, s), acc in sums.items()])
        for ticker, w, s in sorted(sums):
            self._judge(con, ticker, w, s, now)
        for ticker, w in sorted({(t, w) for t, w, _ in sums}):
            self._compact(con, ticker, w)
        return statuses

    def _judge(self, con: sa.Connection, ticker: str, window_s: int, start: int, now: float) -> None:
        w = WINDOW.c
        (_, n, micro), *before = con.execute(  # this window, then up to alert_history windows before it
            sa.select(w.start, w.n, w.score_micro).where(w.ticker == ticker, w.window_s == window_s, w.start <= start)
            .order_by(w.start.desc()).limit(self.p.alert_history + 1)).all()
        history = [m / c / MICRO for _, c, m in before]
        if n < self.p.alert_min_items or len(history) < MIN_HISTORY:
            return
        mu, sd = statistics.fmean(history), statistics.stdev(history)
        mean = micro / n / MICRO
        if sd <= 0 or abs(mean - mu) <= self.p.alert_k * sd:
            return
        row = insert(con, ALERT).values(ticker=ticker, window_s=window_s, start=start, mean=mean, z=(mean - mu) / sd,
                                        mu=mu, sd=sd, n=n, raised_at=now)
        con.execute(row.on_conflict_do_update(index_elements=list(ALERT.primary_key), set_={
            c: row.excluded[c] for c in ("mean", "z", "mu", "sd", "n")}))

    def _compact(self, con: sa.Connection, ticker: str, window_s: int) -> None:
        """Fold the windows beyond the newest `retain_windows` into the carry row, oldest first."""
        w, c = WINDOW.c, CARRY.c
        old = con.execute(sa.select(w.start, w.n, w.score_micro).where(w.ticker == ticker, w.window_s == window_s)
                          .order_by(w.start.desc()).offset(self.p.retain_windows)).all()
        if not old:
            return
        carry = con.execute(sa.select(c.start, c.s, c.w, c.n_total)
                            .where(c.ticker == ticker, c.window_s == window_s)).one_or_none()
        c_start, s, wsum, n_total = carry if carry is not None else (None, 0.0, 0.0, 0)
        for start, n, micro in reversed(old):  # oldest first
            age = 1.0 if c_start is None else self.p.ew_decay ** ((start - c_start) / window_s)
            s, wsum, n_total, c_start = s * age + micro / MICRO, wsum * age + n, n_total + n, start
        row = insert(con, CARRY).values(ticker=ticker, window_s=window_s, start=c_start, s=s, w=wsum, n_total=n_total)
        con.execute(row.on_conflict_do_update(index_elements=list(CARRY.primary_key), set_={
            k: row.excluded[k] for k in ("start", "s", "w", "n_total")}))
        con.execute(sa.delete(WINDOW).where(w.ticker == ticker, w.window_s == window_s, w.start <= c_start))
        # an item before the end of any folded window is late, so its id is never looked up again
        late_before = con.scalar(sa.select(sa.func.max(c.start + c.window_s)).where(c.ticker == ticker))
        con.execute(sa.delete(SEEN).where(SEEN.c.ticker == ticker, SEEN.c.t < late_before))

    # --------------------------------------------------------------------------------------- read
    def series(self, ticker: str, window_s: int, t_from: float | None = None, t_to: float | None = None) -> list[dict]:
        """The index of `ticker` per window of `window_s` seconds whose start lies in [t_from, t_to], oldest
        first: start, n, mean, ew, pos_share, neg_share (non-empty windows only)."""
        with self.lock, self.engine.connect() as con:
            return index_series(con, ticker, window_s, self.p.ew_decay, t_from, t_to)

    def latest(self, ticker: str, t: float) -> list[dict]:
        """Per window size, the index point of the window holding time `t` (after this batch)."""
        out = []
        for w in self.p.windows_s:
            start = int(t // w) * w
            pts = self.series(ticker, w, start, start)
            out.append({"window_s": w, **pts[0]} if pts else {"window_s": w, "start": start, "n": 0, "mean": None,
                                                                "ew": None, "pos_share": None, "neg_share": None})
        return out

    def alerts(self, since: float | None = None, limit: int = 100) -> list[dict]:
        with self.lock, self.engine.connect() as con:
            return alerts(con, since, limit)

    def tickers(self) -> list[str]:
        with self.lock, self.engine.connect() as con:
            return list(con.scalars(sa.select(WINDOW.c.ticker).distinct().order_by(WINDOW.c.ticker)))


def index_series(con: sa.Connection, ticker: str, window_s: int, decay: float, t_from: float | None = None,
                 t_to: float | None = None) -> list[dict]:
    """See OpinionStore.series; the EW sums start from the carry row and run over every kept window."""
    c, w = CARRY.c, WINDOW.c
    carry = con.execute(sa.select(c.start, c.s, c.w).where(c.ticker == ticker, c.window_s == window_s)).one_or_none()
    prev, s, wsum = carry if carry is not None else (None, 0.0, 0.0)
    lo = -math.inf if t_from is None else t_from
    rows = sa.select(w.start, w.n, w.score_micro, w.n_pos, w.n_neg).where(w.ticker == ticker, w.window_s == window_s)
    if t_to is not None:
        rows = rows.where(w.start <= t_to)
    out = []
    for start, n, micro, n_pos, n_neg in con.execute(rows.order_by(w.start)):
        age = 1.0 if prev is None else decay ** ((start - prev) / window_s)
        s, wsum, prev = s * age + micro / MICRO, wsum * age + n, start
        if start >= lo:
            out.append({"start": start, "n": n, "mean": micro / n / MICRO, "ew": s / wsum,
                        "pos_share": n_pos / n, "neg_share": n_neg / n})
    return out


def alerts(con: sa.Connection, since: float | None = None, limit: int = 100) -> list[dict]:
    """Alerts raised at or after `since` (seconds since the epoch), newest first."""
    a = ALERT.c
    keys = ("ticker", "window_s", "start", "mean", "z", "mu", "sd", "n", "raised_at")
    rows = con.execute(sa.select(*(a[k] for k in keys)).where(a.raised_at >= (since if since is not None else -1.0))
                       .order_by(a.raised_at.desc(), a.ticker, a.window_s, a.start).limit(limit))
    return [dict(zip(keys, r, strict=True)) for r in rows]


def daily_frame(path: str | Path, window_s: int = 86400, decay: float = MonitorParams.ew_decay):
    """Every ticker's index per window from the SQLite store at `path` (opened read-only), as a pandas DataFrame
    (ticker, start, n, mean, ew, pos_share, neg_share): what `finmm evaluate --task opinion` reads after a
    replay. A file that cannot be read raises the driver's sqlite3.Error, which that command reports."""
    import pandas as pd

    engine = sqlite_engine(Path(path), readonly=True)
    try:
        with engine.connect() as con:
            tickers = con.scalars(sa.select(WINDOW.c.ticker).distinct().where(WINDOW.c.window_s == window_s)).all()
            rows = [{"ticker": t, **p} for t in sorted(tickers) for p in index_series(con, t, window_s, decay)]
    except sa.exc.DBAPIError as exc:
        raise exc.orig from None
    finally:
        engine.dispose()
    return pd.DataFrame(rows, columns=["ticker", "start", "n", "mean", "ew", "pos_share", "neg_share"])
