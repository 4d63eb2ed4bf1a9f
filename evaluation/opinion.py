"""The opinion index against returns, after Qlib's IC / Rank IC tables: for each trading day t of the split,
the cross-sectional Pearson (IC) and Spearman (Rank IC) correlation over tickers between a signal known at
the trading day before t and the return of day t; then the mean over days, its sd, ICIR = mean / sd and
t = mean / sd * sqrt(days).

Signals (each from the UTC day of the trading day before t):
- `index_mean`: the monitor's mean score P(pos) - P(neg) of that day (tickers without tweets that day left out);
- `index_ew`: its exponentially weighted score as of that day (the last non-empty window's, which an empty day
  does not change);
- `volume`: tweets that day (0 without any), baseline 1;
- `wordlist`: mean over that day's tweets of VADER's compound score (the `vadersentiment` package's word
  list), baseline 2.

Labels: `ret` close-to-close (Close_t / Close_t-1 - 1, what the issue asks) and `ret_oc` open-to-close of day t.
A UTC day ends 3 hours after the US close, so the day-(t-1) signal holds tweets written after the close of t-1:
`ret` is not a return one could trade on the signal; `ret_oc` (from the open of t, 14:30 UTC) is.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from actors.opinion import daily_frame
from actors.opinion_stream import daily_returns, split_period, stocknet_items

MIN_TICKERS = 5
"""Fewest tickers with a signal and a return for a day to count."""


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def wordlist_score(text: str) -> float:
    """Baseline 2: VADER's compound score in [-1, 1] (Hutto & Gilbert 2014: a rated word list with rules for
    negation, intensifiers and emoticons, made for social-media text such as StockNet's tweets)."""
    return float(_vader().polarity_scores(text)["compound"])


def _utc_day(ts) -> pd.Series:
    return pd.to_datetime(ts, unit="s", utc=True).dt.date


def signal_panel(state: Path, root: Path, split: str, decay: float) -> pd.DataFrame:
    """One row per (ticker, trading day t of the split) with its returns and the four signals of day t-1."""
    index = daily_frame(state, 86400, decay)
    index["day"] = _utc_day(index["start"])
    tickers = sorted(index["ticker"].unique())  # the tickers the replay put through the monitor
    items = pd.DataFrame(stocknet_items(root, split, only=tickers))
    items["day"] = pd.to_datetime(items["time"], utc=True).dt.date
    items["wordlist"] = items["text"].map(wordlist_score)
    words = items.groupby(["ticker", "day"])["wordlist"].mean().rename("wordlist").reset_index()
    start, end = split_period(split)
    rets = daily_returns(root, tickers)
    rets = rets[(rets["date"] >= start.date()) & (rets["date"] < end.date())].copy()
    panel = rets.merge(index[["ticker", "day", "mean", "n"]].rename(columns={"day": "prev_date"}),
                       on=["ticker", "prev_date"], how="left")
    panel = panel.merge(words.rename(columns={"day": "prev_date"}), on=["ticker", "prev_date"], how="left")
    panel["volume"] = panel.pop("n").fillna(0)
    panel = panel.rename(columns={"mean": "index_mean"})
    # EW as of day t-1: the last non-empty window on or before it
    ew = index[["ticker", "day", "ew"]].rename(columns={"day": "prev_date", "ew": "index_ew"})
    ew["prev_date"] = pd.to_datetime(ew["prev_date"])
    panel["prev_date_ts"] = pd.to_datetime(panel["prev_date"])
    panel = pd.merge_asof(panel.sort_values("prev_date_ts"), ew.sort_values("prev_date"), left_on="prev_date_ts",
                          right_on="prev_date", by="ticker", direction="backward", suffixes=("", "_ew"))
    return panel.drop(columns=["prev_date_ew", "prev_date_ts"]).sort_values(["date", "ticker"]).reset_index(drop=True)


def ic_summary(panel: pd.DataFrame, signal: str, label: str, min_tickers: int = MIN_TICKERS) -> dict:
    """Daily cross-sectional IC and Rank IC of `signal` against `label`: mean, sd, ICIR, t-stat, days."""
    ics, rank_ics = [], []
    for _, day in panel.groupby("date"):
        d = day[[signal, label]].dropna()
        if len(d) < min_tickers or d[signal].nunique() < 2 or d[label].nunique() < 2:
            continue
        ics.append(stats.pearsonr(d[signal], d[label]).statistic)
        rank_ics.append(stats.spearmanr(d[signal], d[label]).statistic)
    return {**_moments(np.array(ics), "ic"), **_moments(np.array(rank_ics), "rank_ic"), "days": len(ics)}


def _moments(x: np.ndarray, name: str) -> dict:
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return {name: math.nan, f"{name}_std": math.nan, f"{name}ir" if name == "ic" else f"{name}_ir": math.nan,
                f"{name}_t": math.nan}
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    ir = mean / sd if sd > 0 else math.nan
    return {name: mean, f"{name}_std": sd, "icir" if name == "ic" else f"{name}_ir": ir,
            f"{name}_t": ir * math.sqrt(len(x))}


SIGNALS = ("index_mean", "index_ew", "volume", "wordlist")
LABELS = ("ret", "ret_oc")


def evaluate_opinion(state: Path, root: Path, split: str = "test", decay: float = 0.8,
                     min_tickers: int = MIN_TICKERS) -> dict:
    """The report `finmm evaluate --task opinion` writes: per label, per signal, ic_summary; plus coverage."""
    panel = signal_panel(Path(state), Path(root), split, decay)
    labels = {label: {s: ic_summary(panel, s, label, min_tickers) for s in SIGNALS} for label in LABELS}
    return {"dataset": "stocknet", "split": split, "state": str(state), "min_tickers": min_tickers,
            "ew_decay": decay, "ticker_days": len(panel),
            "ticker_days_with_tweets": int(panel["index_mean"].notna().sum()), "labels": labels}
