"""StockNet (Xu & Cohen 2018): binary movement of 88 stocks from the previous days' prices and tweets.

A sample is a (ticker, target trading day t) with t a date of `price/preprocessed/<T>.txt` inside a split range
of EVAL.md. Everything a sample holds comes from before t:
- `series`: the `window_days + 1` trading days of `price/raw` before t, rows [open, high, low, close, volume],
  oldest first (the extra leading day is the base for returns). Raw, split-adjusted Yahoo prices with the
  `Close` column (consistent with open/high/low); `Adj Close` (dividend-adjusted) is not used.
- `text`: the tweets dated from the first day of the lag window (the `window_days`-th trading day before t) up
  to the day before t, each tweet's tokens joined with spaces, oldest first, joined with " [SEP] ".
- `image`: a candlestick PNG of the `chart_days` trading days before t (blank bars pad the left when
  the price history is shorter).
The label (movement percent of day t, `price/preprocessed` column 2) is 1 if > 0.0055, 0 if <= -0.005; samples
in between, and samples with fewer than `window_days + 1` trading days of price history before t, are rejected
with the reason. No tweet is required: with these rules the test split has EVAL.md's 3,720 samples.

Declared in builtin.yaml (`parser: stocknet`): the index files, the split days, the label classes and the
movement thresholds (`options`) come from there. What needs Python is everything else: a sample is not a row
of any file but a (ticker, day) joined across three per-ticker files, with a price window, a tweet window and a
rendered chart.
"""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from actors.chart import render_candlestick
from actors.settings import DataSection
from actors.sources.base import (
    SourceTable,
    conform,
    core_fields,
    empty_rejected,
    rejected_frame,
    require_columns,
    slice_per_split,
)
from actors.sources.builtin import Parser, builtin_declaration, file_error
from actors.sources.rules import label_index, time_ranges

NAME = "stocknet"
DECL = builtin_declaration(NAME)
STOCK_TABLE, TWEET_MANIFEST = DECL.files
"""`StockTable.tsv`: the data set's list of its stocks (tab-separated `Sector, Symbol, Company`; symbols written
`$<TICKER>`). `tweet/preprocessed/MANIFEST.tsv`: one row per original tweet day-file (`ticker, date, ...`): a
ticker without rows has no tweet file."""
MANIFEST_COLUMNS = ["ticker", "date", "n_lines", "bytes", "sha256_original_file"]

SPLITS = tuple((split, lo.isoformat(), hi.isoformat()) for split, lo, hi in time_ranges(DECL.split))
"""(split, first target day, day after the last), as ISO dates: train, validation, test."""
RISE_ABOVE = DECL.options["rise_above"]
FALL_AT_OR_BELOW = DECL.options["fall_at_or_below"]
LABELS = label_index(DECL.label)
"""rise -> 1, fall -> 0."""
TWEET_SEP = " [SEP] "
RAW_COLUMNS = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
OHLCV = ["Open", "High", "Low", "Close", "Volume"]
PRE_COLUMNS = ["date", "movement_pct", "open", "high", "low", "close", "volume"]

REASON_NEUTRAL = "movement within the neutral band"
REASON_NO_MOVEMENT = "missing movement percent"
REASON_SHORT_HISTORY = "fewer than window_days + 1 trading days of price history before t"

SCHEMA = pa.schema(
    core_fields()
    + [
        pa.field("text", pa.string()),
        pa.field("image", pa.binary()),
        pa.field("series", pa.list_(pa.list_(pa.float64()))),
        pa.field("ticker", pa.string()),
        pa.field("date", pa.string()),
        pa.field("n_tweets", pa.int64()),
        pa.field("source", pa.string()),
    ]
)


def raw_file(t: str) -> str:
    return f"price/raw/{t}.csv"


def pre_file(t: str) -> str:
    return f"price/preprocessed/{t}.txt"


def tweet_file(t: str) -> str:
    return f"tweet/preprocessed/{t}.jsonl"


def read_index_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """One of the data set's tab-separated index files (StockTable, tweet manifest), with its header checked."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise file_error(NAME, path, f"cannot parse as tab-separated text: {e}") from e
    require_columns(partial(file_error, NAME), path, table.columns, columns)
    return table


def stock_tickers(folder: Path) -> list[str]:
    """The stocks listed in the data set's StockTable, in file order."""
    path = folder / STOCK_TABLE
    symbols = read_index_table(path, ["Sector", "Symbol", "Company"])["Symbol"].str.strip().str.lstrip("$")
    empty = (symbols.isna() | (symbols == "")).to_numpy()
    if empty.any():
        raise file_error(NAME, path, f"empty Symbol at line {int(np.argmax(empty)) + 2}")
    return symbols.tolist()


def tweeted_tickers(folder: Path) -> set[str]:
    """Tickers with tweets, from the packed tweets' manifest."""
    return set(read_index_table(folder / TWEET_MANIFEST, MANIFEST_COLUMNS)["ticker"].dropna())


def ticker_files(folder: Path) -> tuple[str, ...]:
    """Every StockTable ticker's raw and preprocessed prices, and its tweets if the manifest lists any."""
    tickers, tweeted = stock_tickers(folder), tweeted_tickers(folder)
    return tuple([raw_file(t) for t in tickers] + [pre_file(t) for t in tickers]
                 + [tweet_file(t) for t in tickers if t in tweeted])


def check_field_counts(path: Path, sep: str, n_fields: int) -> str:
    """The file's text, after checking that every line has `n_fields` fields (pandas would pad short lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise file_error(NAME, path, f"not valid UTF-8 at byte {e.start}") from e
    for i, line in enumerate(text.splitlines(), start=1):
        if line.count(sep) != n_fields - 1:
            raise file_error(NAME, path, f"line {i} has {line.count(sep) + 1} fields, expected {n_fields}")
    return text


def read_raw(path: Path) -> pd.DataFrame:
    text = check_field_counts(path, ",", len(RAW_COLUMNS))
    try:
        df = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=["null", ""], dtype={"Date": str})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise file_error(NAME, path, f"cannot parse as CSV: {e}") from e
    require_columns(partial(file_error, NAME), path, df.columns, RAW_COLUMNS)
    bad = pd.to_datetime(df["Date"], format="%Y-%m-%d", errors="coerce").isna()
    if bad.any():
        raise file_error(NAME, path, f"unparseable Date at line {int(np.argmax(bad.to_numpy())) + 2}")
    if not df["Date"].is_monotonic_increasing or not df["Date"].is_unique:
        raise file_error(NAME, path, "dates are not strictly ascending")
    for c in OHLCV:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise file_error(NAME, path, f"column {c} has non-numeric values")
    return df


def read_preprocessed(path: Path) -> pd.DataFrame:
    text = check_field_counts(path, "\t", len(PRE_COLUMNS))
    try:
        df = pd.read_csv(
            io.StringIO(text), sep="\t", header=None, dtype={0: str}, keep_default_na=False, na_values=[""]
        )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise file_error(NAME, path, f"cannot parse as tab-separated text: {e}") from e
    if df.shape[1] != len(PRE_COLUMNS):
        raise file_error(NAME, path, f"expected {len(PRE_COLUMNS)} tab-separated columns, found {df.shape[1]}")
    df.columns = PRE_COLUMNS
    df["line"] = np.arange(len(df), dtype="int64") + 1
    df["movement_pct"] = pd.to_numeric(df["movement_pct"], errors="coerce")
    return df


def read_tweet_days(path: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted unique dates, that day's tweets joined with TWEET_SEP, tweets that day)."""
    if path is None:
        return np.array([], dtype=object), np.array([], dtype=object), np.array([], dtype=np.int64)
    schema = pa.schema([("date", pa.string()), ("text", pa.list_(pa.string()))])
    try:
        table = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=schema))
    except (pa.ArrowInvalid, OSError) as e:
        raise file_error(NAME, path, f"not valid JSON Lines with a 'date' and a token-list 'text': {e}") from e
    if table["date"].null_count or table["text"].null_count:
        raise file_error(NAME, path, "a tweet lacks its 'date' or 'text'")
    df = pd.DataFrame({"date": table["date"].to_numpy(zero_copy_only=False),
                       "text": pc.binary_join(table["text"], " ").to_numpy(zero_copy_only=False)})  # fmt: skip
    days = df.groupby("date", sort=True)["text"].agg([TWEET_SEP.join, "size"])
    return days.index.to_numpy(dtype=object), days["join"].to_numpy(dtype=object), days["size"].to_numpy()


def ticker_samples(root: Path, ticker: str, window: int, has_tweets: bool = True
                   ) -> tuple[pd.DataFrame, pd.DataFrame, int, np.ndarray]:
    """→ (accepted samples without images, rejected samples, candidates read, raw OHLCV) for one ticker;
    `has_tweets`: whether the tweet manifest lists the ticker (see `tweeted_tickers`)."""
    folder = root / NAME
    raw = read_raw(folder / raw_file(ticker))
    pre = read_preprocessed(folder / pre_file(ticker))
    days, day_text, day_n = read_tweet_days(folder / tweet_file(ticker) if has_tweets else None)

    split = pd.Series(None, index=pre.index, dtype="object")
    for name, lo, hi in SPLITS:
        split[(pre["date"] >= lo) & (pre["date"] < hi)] = name
    cand = pre[split.notna()].assign(split=split[split.notna()]).sort_values("date").reset_index(drop=True)
    mv = cand["movement_pct"].to_numpy()
    raw_dates = raw["Date"].to_numpy(dtype=object)
    pos = np.searchsorted(raw_dates, cand["date"].to_numpy(dtype=object), side="left")  # raw rows before t
    reason = np.where(
        np.isnan(mv),
        REASON_NO_MOVEMENT,
        np.where((mv > FALL_AT_OR_BELOW) & (mv <= RISE_ABOVE), REASON_NEUTRAL,
                 np.where(pos < window + 1, REASON_SHORT_HISTORY, "")),
    )  # fmt: skip
    ok = reason == ""
    rej = cand[~ok]
    rejected = rejected_frame(
        pd.DataFrame(
            {"ticker": ticker, "date": rej["date"].to_numpy(), "movement_pct": rej["movement_pct"].to_numpy()}
        ),
        reason[~ok],
        pre_file(ticker),
        rej["line"].to_numpy(),
    )

    acc, p = cand[ok].reset_index(drop=True), pos[ok]
    values = raw[OHLCV].to_numpy(dtype=np.float64)
    series = [values[j - window - 1 : j].tolist() for j in p]
    # Tweets dated from the first day of the lag window (the window-th trading day before t) to before t.
    first = np.searchsorted(days, raw_dates[p - window], side="left")
    last = np.searchsorted(days, acc["date"].to_numpy(dtype=object), side="left")
    cum = np.concatenate([[0], np.cumsum(day_n)])
    rows = pd.DataFrame(
        {
            "id": [f"{ticker}:{d}" for d in acc["date"]],
            "split": acc["split"].to_numpy(),
            "label": np.where(mv[ok] > RISE_ABOVE, LABELS["rise"], LABELS["fall"]).astype("int64"),
            "text": [TWEET_SEP.join(day_text[a:b]) for a, b in zip(first, last, strict=True)],
            "series": series,
            "ticker": ticker,
            "date": acc["date"].to_numpy(),
            "n_tweets": (cum[last] - cum[first]).astype("int64"),
            "source": [f"{pre_file(ticker)}:{n}" for n in acc["line"]],
            "raw_pos": p,
        }
    )
    return rows, rejected, len(cand), values


def chart(values: np.ndarray, pos: int, chart_days: int, size: int) -> bytes:
    """Candlestick PNG of the chart_days raw rows before row `pos`; missing history is padded with blank bars."""
    window = values[max(0, pos - chart_days) : pos]
    if len(window) < chart_days:
        window = np.vstack([np.full((chart_days - len(window), 5), np.nan), window])
    return render_candlestick(window, size=size)


def all_samples(root: Path, window: int) -> tuple[pd.DataFrame, list[pd.DataFrame], int, dict[str, np.ndarray]]:
    """`ticker_samples` over every StockTable ticker → (accepted samples sorted by date then ticker, the
    rejected frames, candidates read, raw OHLCV per ticker)."""
    parts, rejected, n_read, bars = [], [], 0, {}
    tweeted = tweeted_tickers(root / NAME)
    for ticker in stock_tickers(root / NAME):
        rows, rej, n, bars[ticker] = ticker_samples(root, ticker, window, ticker in tweeted)
        parts.append(rows)
        rejected.append(rej)
        n_read += n
    rows = pd.concat(parts, ignore_index=True).sort_values(["date", "ticker"], kind="stable")
    return rows, rejected, n_read, bars


def load(root: Path, settings: DataSection) -> SourceTable:
    window, chart_days = settings.series.window_days, settings.series.chart_days
    rows, rejected, n_read, bars = all_samples(root, window)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    # Charts are rendered only for the rows kept, from the chart_days raw rows before t.
    size = settings.image.image_size
    rows["image"] = [chart(bars[t], j, chart_days, size) for t, j in zip(rows["ticker"], rows["raw_pos"], strict=True)]
    rows = conform(rows, SCHEMA)
    rej = [r for r in rejected if len(r)]
    rejected_all = pd.concat(rej, ignore_index=True) if rej else empty_rejected(["ticker", "date", "movement_pct"])
    files = [root / NAME / f for f in (STOCK_TABLE, TWEET_MANIFEST) + ticker_files(root / NAME)]
    return SourceTable(NAME, rows, rejected_all, files, n_read=n_read, n_sliced_out=n_sliced)


PARSER = Parser(load=load, schema=SCHEMA, list_files=ticker_files, modalities=("text", "image", "series"))
