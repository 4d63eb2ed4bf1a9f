"""StockNet as a stream for the opinion monitor: its tweets as items {ticker, time, text, source, id} in time
order, and its daily prices as returns (what `finmm evaluate --task opinion` sets the index against).

- A tweet's time is its `created_at` (UTC), its text the preprocessed tokens joined with spaces (lower-cased,
  `AT_USER` and `URL` placeholders, as the data set ships them), its id `stocknet:<TICKER>:<line>` (exact
  duplicate tweets in the data count as the data has them).
- A split's stream runs from LEAD_DAYS before its first target day to its end (EVAL.md's dates), so the
  index of the day before the first target day exists.
- Returns come from `price/raw` `Close` (split-adjusted): close-to-close (the day's return) and open-to-close.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from actors.sources.stocknet import SPLITS, raw_file, tweet_file

LEAD_DAYS = 7
"""Calendar days of tweets streamed before a split's first target day (covers a long weekend)."""
TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"
"""Twitter's created_at, e.g. `Wed Jan 01 03:59:03 +0000 2014`."""


def split_period(split: str) -> tuple[datetime, datetime]:
    """[first target day, end) of a StockNet split, as UTC datetimes."""
    for name, start, end in SPLITS:
        if name == split:
            return (datetime.fromisoformat(start).replace(tzinfo=UTC), datetime.fromisoformat(end).replace(tzinfo=UTC))
    raise ValueError(f"unknown split {split!r}: one of {', '.join(s[0] for s in SPLITS)}")


def tickers(root: Path) -> list[str]:
    return sorted(p.stem for p in (Path(root) / "tweet" / "preprocessed").glob("*.jsonl"))


def stocknet_items(root: Path, split: str, only: list[str] | None = None, limit: int | None = None) -> list[dict]:
    """The split's tweets (LEAD_DAYS before its start to its end) as monitor items, oldest first; `only`: these
    tickers; `limit`: the first `limit` items in time order."""
    start, end = split_period(split)
    start -= timedelta(days=LEAD_DAYS)
    items = [it for t in (only or tickers(root)) for it in _ticker_items(Path(root), t, start, end)]
    items.sort(key=lambda it: (it["time"], it["id"]))
    return items[:limit] if limit is not None else items


def _ticker_items(root: Path, ticker: str, start: datetime, end: datetime) -> Iterator[dict]:
    path = root / tweet_file(ticker)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh):
            tweet = json.loads(line)
            when = datetime.strptime(tweet["created_at"], TIME_FORMAT).astimezone(UTC)
            text = " ".join(tweet["text"]).strip()
            if start <= when < end and text:
                yield {"ticker": ticker, "time": when.isoformat().replace("+00:00", "Z"), "text": text,
                       "source": "stocknet", "id": f"stocknet:{ticker}:{line_no}"}


def daily_returns(root: Path, ticker_names: list[str]) -> pd.DataFrame:
    """Per ticker and trading day: `ret` = Close / previous Close - 1, `ret_oc` = Close / Open - 1, and
    `prev_date`, the trading day before (whose index predicts `ret`)."""
    frames = []
    for t in ticker_names:
        path = Path(root) / raw_file(t)
        if not path.exists():
            continue
        px = pd.read_csv(path, usecols=["Date", "Open", "Close"]).sort_values("Date")
        frames.append(pd.DataFrame({
            "ticker": t, "date": pd.to_datetime(px["Date"]).dt.date, "ret": px["Close"] / px["Close"].shift(1) - 1,
            "ret_oc": px["Close"] / px["Open"] - 1, "prev_date": pd.to_datetime(px["Date"]).dt.date.shift(1)}))
    return pd.concat(frames, ignore_index=True).dropna(subset=["ret", "prev_date"])
