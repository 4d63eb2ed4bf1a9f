"""The opinion evaluation (evaluation/opinion.py): Qlib-style IC / Rank IC on synthetic panels, and on
a slice of StockNet's test tweets put through a real OpinionStore."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from actors.opinion import OpinionStore, ScoredItem
from actors.opinion_stream import stocknet_items
from evaluation.opinion import evaluate_opinion, ic_summary, signal_panel, wordlist_score

TICKERS = ["AAPL", "AMZN", "BAC", "GOOG", "FB", "MSFT", "JPM", "XOM", "GE", "WFC"]


def _panel(days: int = 30, tickers: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"date": d, "ticker": t, "ret": rng.normal()} for d in range(days) for t in range(tickers)]
    panel = pd.DataFrame(rows)
    panel["same"] = panel["ret"]
    panel["noisy"] = panel["ret"] + rng.normal(size=len(panel))
    return panel


def test_ic_of_the_label_itself_is_one_and_the_t_stat_is_qlibs():
    panel = _panel()
    same = ic_summary(panel, "same", "ret")
    assert same["ic"] == pytest.approx(1) and same["rank_ic"] == pytest.approx(1) and same["days"] == 30
    panel["minus"] = -panel["ret"]
    assert ic_summary(panel, "minus", "ret")["rank_ic"] == pytest.approx(-1)
    noisy = ic_summary(panel, "noisy", "ret")
    daily = [stats.pearsonr(d["noisy"], d["ret"]).statistic for _, d in panel.groupby("date")]
    assert noisy["ic"] == pytest.approx(np.mean(daily))
    assert noisy["ic_t"] == pytest.approx(stats.ttest_1samp(daily, 0).statistic)
    assert noisy["icir"] == pytest.approx(np.mean(daily) / np.std(daily, ddof=1))
    few = panel[panel["ticker"] < 4]
    assert ic_summary(few, "same", "ret", min_tickers=5)["days"] == 0  # too few tickers a day


@pytest.fixture(scope="module")
def replayed(data_root, tmp_path_factory) -> tuple[Path, Path]:
    """Ten tickers' test tweets through a real store, each scored by the word list (a stand-in model)."""
    root = Path(data_root) / "stocknet"
    path = tmp_path_factory.mktemp("opinion") / "store.sqlite"
    store = OpinionStore(path)
    items = stocknet_items(root, "test", only=TICKERS)
    scored = []
    for it in items:
        s = wordlist_score(it["text"])
        scored.append(ScoredItem(it["id"], it["ticker"], datetime.fromisoformat(it["time"]).timestamp(), s,
                                 "positive" if s > 0 else "negative" if s < 0 else "neutral"))
    for i in range(0, len(scored), 64):
        store.ingest(scored[i:i + 64])
    store.close()
    return path, root


def test_the_signal_of_day_t_comes_from_the_trading_day_before(replayed):
    path, root = replayed
    panel = signal_panel(path, root, "test", decay=0.8)
    assert set(panel["ticker"]) <= set(TICKERS) and len(panel) > 500
    assert (panel["prev_date"] < panel["date"]).all()
    assert panel["date"].min().isoformat() >= "2015-10-01" and panel["date"].max().isoformat() < "2016-01-01"
    assert (panel["volume"] >= 0).all() and panel["index_mean"].notna().sum() > 200


def test_an_index_of_word_list_scores_has_the_word_list_baselines_ic(replayed):
    path, root = replayed
    report = evaluate_opinion(path, root, "test", decay=0.8)
    for label in ("ret", "ret_oc"):
        rows = report["labels"][label]
        assert set(rows) == {"index_mean", "index_ew", "volume", "wordlist"}
        assert rows["index_mean"]["days"] == rows["wordlist"]["days"] > 30
        assert rows["index_mean"]["ic"] == pytest.approx(rows["wordlist"]["ic"], abs=1e-5)
        assert all(-1 <= r["ic"] <= 1 and -1 <= r["rank_ic"] <= 1 for r in rows.values())
