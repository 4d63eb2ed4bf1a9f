"""The opinion monitor's state: per ticker (or topic) and window size, what the scored items of each window add
up to, kept in SQLite (stdlib sqlite3, WAL). Pure Python, no Ray: serve/opinion.py wraps it in the actors
that own a shard of the tickers, and `finmm evaluate --task opinion` reads the store a replay wrote.

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
  before it is acknowledged (synchronous=FULL): what was acknowledged survives a killed process.
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

MICRO = 1_000_000
"""Scores are summed as integers in units of 1e-6."""
MIN_HISTORY = 3
"""Fewest earlier non-empty windows an alert is judged against."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS opinion_window (
    ticker TEXT NOT NULL, window_s INTEGER NOT NULL, start INTEGER NOT NULL,
    n INTEGER NOT NULL, score_micro INTEGER NOT NULL, n_pos INTEGER NOT NULL, n_neg INTEGER NOT NULL,
    PRIMARY KEY (ticker, window_s, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS opinion_carry (
    ticker TEXT NOT NULL, window_s INTEGER NOT NULL, start INTEGER NOT NULL,
    s REAL NOT NULL, w REAL NOT NULL, n_total INTEGER NOT NULL,
    PRIMARY KEY (ticker, window_s)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS opinion_seen (
    item_id TEXT PRIMARY KEY, ticker TEXT NOT NULL, t REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS opinion_seen_by_time ON opinion_seen (ticker, t);
CREATE TABLE IF NOT EXISTS opinion_alert (
    ticker TEXT NOT NULL, window_s INTEGER NOT NULL, start INTEGER NOT NULL,
    mean REAL NOT NULL, z REAL NOT NULL, mu REAL NOT NULL, sd REAL NOT NULL, n INTEGER NOT NULL,
    raised_at REAL NOT NULL, PRIMARY KEY (ticker, window_s, start)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS opinion_alert_by_time ON opinion_alert (raised_at);
"""


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
    """A connection to the store at `path` (created with its tables): WAL, synchronous=FULL, busy timeout
    10 s (the conversation store and every monitor shard write the same file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.executescript(SCHEMA)
    return con


class OpinionStore:
    """The state of the tickers one monitor owns, in the SQLite file at `path`."""

    def __init__(self, path: str | Path, params: MonitorParams = MonitorParams()):
        if params.retain_windows <= params.alert_history:
            raise ValueError("retain_windows must exceed alert_history (alerts read the kept windows)")
        self.path, self.p = Path(path), params
        self.con = connect(self.path)
        self.lock = threading.RLock()
        """One connection, one transaction at a time: Serve runs an actor's sync methods in a thread pool."""

    def close(self) -> None:
        self.con.close()

    # ------------------------------------------------------------------------------------- ingest
    def ingest(self, items: Iterable[ScoredItem], now: float | None = None) -> list[str]:
        """Add a batch in one transaction; each item's status: accepted, duplicate or late."""
        with self.lock:
            return self._ingest(items, time.time() if now is None else now)

    def _ingest(self, items: Iterable[ScoredItem], now: float) -> list[str]:
        statuses: list[str] = []
        touched: set[tuple[str, int, int]] = set()
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            for it in items:
                starts = {w: int(it.t // w) * w for w in self.p.windows_s}
                if any(self._folded(it.ticker, w, s) for w, s in starts.items()):
                    statuses.append("late")
                    continue
                if con.execute("INSERT OR IGNORE INTO opinion_seen VALUES (?, ?, ?)",
                               (it.id, it.ticker, it.t)).rowcount == 0:
                    statuses.append("duplicate")
                    continue
                micro = round(it.score * MICRO)
                pos, neg = int(it.label == "positive"), int(it.label == "negative")
                for w, s in starts.items():
                    con.execute(
                        "INSERT INTO opinion_window VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                        "n = n + 1, score_micro = score_micro + excluded.score_micro, n_pos = n_pos + excluded.n_pos,"
                        " n_neg = n_neg + excluded.n_neg", (it.ticker, w, s, micro, pos, neg))
                    touched.add((it.ticker, w, s))
                statuses.append("accepted")
            for ticker, w, s in sorted(touched):
                self._judge(ticker, w, s, now)
            for ticker, w in sorted({(t, w) for t, w, _ in touched}):
                self._compact(ticker, w)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return statuses

    def _folded(self, ticker: str, window_s: int, start: int) -> bool:
        row = self.con.execute("SELECT start FROM opinion_carry WHERE ticker = ? AND window_s = ?",
                               (ticker, window_s)).fetchone()
        return row is not None and start <= row[0]

    def _judge(self, ticker: str, window_s: int, start: int, now: float) -> None:
        con = self.con
        n, micro = con.execute("SELECT n, score_micro FROM opinion_window WHERE ticker = ? AND window_s = ? AND "
                               "start = ?", (ticker, window_s, start)).fetchone()
        if n < self.p.alert_min_items:
            return
        history = [m / c / MICRO for c, m in con.execute(
            "SELECT n, score_micro FROM opinion_window WHERE ticker = ? AND window_s = ? AND start < ? "
            "ORDER BY start DESC LIMIT ?", (ticker, window_s, start, self.p.alert_history))]
        if len(history) < MIN_HISTORY:
            return
        mu, sd = statistics.fmean(history), statistics.stdev(history)
        mean = micro / n / MICRO
        if sd <= 0 or abs(mean - mu) <= self.p.alert_k * sd:
            return
        con.execute("INSERT INTO opinion_alert VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                    "mean = excluded.mean, z = excluded.z, mu = excluded.mu, sd = excluded.sd, n = excluded.n",
                    (ticker, window_s, start, mean, (mean - mu) / sd, mu, sd, n, now))

    def _compact(self, ticker: str, window_s: int) -> None:
        """Fold the windows beyond the newest `retain_windows` into the carry row, oldest first."""
        con = self.con
        old = con.execute("SELECT start, n, score_micro FROM opinion_window WHERE ticker = ? AND window_s = ? "
                          "ORDER BY start DESC LIMIT -1 OFFSET ?", (ticker, window_s, self.p.retain_windows)).fetchall()
        if not old:
            return
        carry = con.execute("SELECT start, s, w, n_total FROM opinion_carry WHERE ticker = ? AND window_s = ?",
                            (ticker, window_s)).fetchone()
        c_start, s, w, n_total = carry if carry is not None else (None, 0.0, 0.0, 0)
        for start, n, micro in reversed(old):  # oldest first
            age = 1.0 if c_start is None else self.p.ew_decay ** ((start - c_start) / window_s)
            s, w, n_total, c_start = s * age + micro / MICRO, w * age + n, n_total + n, start
        con.execute("INSERT OR REPLACE INTO opinion_carry VALUES (?, ?, ?, ?, ?, ?)",
                    (ticker, window_s, c_start, s, w, n_total))
        con.execute("DELETE FROM opinion_window WHERE ticker = ? AND window_s = ? AND start <= ?",
                    (ticker, window_s, c_start))
        # an item before the end of any folded window is late, so its id is never looked up again
        (late_before,) = con.execute("SELECT MAX(start + window_s) FROM opinion_carry WHERE ticker = ?",
                                     (ticker,)).fetchone()
        con.execute("DELETE FROM opinion_seen WHERE ticker = ? AND t < ?", (ticker, late_before))

    # --------------------------------------------------------------------------------------- read
    def series(self, ticker: str, window_s: int, t_from: float | None = None, t_to: float | None = None) -> list[dict]:
        """The index of `ticker` per window of `window_s` seconds whose start lies in [t_from, t_to], oldest
        first: start, n, mean, ew, pos_share, neg_share (non-empty windows only)."""
        with self.lock:
            return index_series(self.con, ticker, window_s, self.p.ew_decay, t_from, t_to)

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
        with self.lock:
            return alerts(self.con, since, limit)

    def tickers(self) -> list[str]:
        with self.lock:
            return [r[0] for r in self.con.execute("SELECT DISTINCT ticker FROM opinion_window ORDER BY ticker")]


def index_series(con: sqlite3.Connection, ticker: str, window_s: int, decay: float, t_from: float | None = None,
                 t_to: float | None = None) -> list[dict]:
    """See OpinionStore.series; the EW sums start from the carry row and run over every kept window."""
    carry = con.execute("SELECT start, s, w FROM opinion_carry WHERE ticker = ? AND window_s = ?",
                        (ticker, window_s)).fetchone()
    prev, s, w = carry if carry is not None else (None, 0.0, 0.0)
    lo, hi = -math.inf if t_from is None else t_from, math.inf if t_to is None else t_to
    out = []
    for start, n, micro, n_pos, n_neg in con.execute(
            "SELECT start, n, score_micro, n_pos, n_neg FROM opinion_window WHERE ticker = ? AND window_s = ? "
            "AND start <= ? ORDER BY start", (ticker, window_s, hi if hi != math.inf else 2 ** 62)):
        age = 1.0 if prev is None else decay ** ((start - prev) / window_s)
        s, w, prev = s * age + micro / MICRO, w * age + n, start
        if start >= lo:
            out.append({"start": start, "n": n, "mean": micro / n / MICRO, "ew": s / w,
                        "pos_share": n_pos / n, "neg_share": n_neg / n})
    return out


def alerts(con: sqlite3.Connection, since: float | None = None, limit: int = 100) -> list[dict]:
    """Alerts raised at or after `since` (seconds since the epoch), newest first."""
    rows = con.execute("SELECT ticker, window_s, start, mean, z, mu, sd, n, raised_at FROM opinion_alert "
                       "WHERE raised_at >= ? ORDER BY raised_at DESC, ticker, window_s, start LIMIT ?",
                       (since if since is not None else -1.0, limit)).fetchall()
    keys = ("ticker", "window_s", "start", "mean", "z", "mu", "sd", "n", "raised_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def daily_frame(path: str | Path, window_s: int = 86400, decay: float = MonitorParams.ew_decay):
    """Every ticker's index per window from the store at `path`, as a pandas DataFrame (ticker, start, n,
    mean, ew, pos_share, neg_share): what `finmm evaluate --task opinion` reads after a replay."""
    import pandas as pd

    con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        tickers = [r[0] for r in con.execute("SELECT DISTINCT ticker FROM opinion_window WHERE window_s = ?",
                                             (window_s,))]
        rows = [{"ticker": t, **p} for t in sorted(tickers) for p in index_series(con, t, window_s, decay)]
    finally:
        con.close()
    return pd.DataFrame(rows, columns=["ticker", "start", "n", "mean", "ew", "pos_share", "neg_share"])
