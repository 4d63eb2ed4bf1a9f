from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from actors.settings import DataSection
from actors.sources import DataFileError, load_source
from actors.sources.stocknet import REASON_NEUTRAL, REASON_SHORT_HISTORY


@pytest.fixture(scope="module")
def table(load):
    return load("stocknet")


def test_counts_labels_and_splits(table):
    table.check_reconciled()
    assert table.split_counts() == {"test": 3720, "train": 20342, "validation": 2555}  # EVAL.md: test 3,720
    assert table.reject_counts() == {REASON_NEUTRAL: 16819, REASON_SHORT_HISTORY: 6}
    assert table.n_read == 26617 + 16819 + 6
    rows = table.rows
    for split, lo, hi in (("train", "2014-01-01", "2015-08-01"), ("validation", "2015-08-01", "2015-10-01"),
                          ("test", "2015-10-01", "2016-01-01")):  # fmt: skip
        d = rows.loc[rows["split"] == split, "date"]
        assert d.min() >= lo and d.max() < hi
    assert rows.loc[rows["split"] == "test", "label"].value_counts().to_dict() == {1: 1908, 0: 1812}


def test_label_rule_against_preprocessed(table, data_root):
    pre = pd.read_csv(data_root / "stocknet/price/preprocessed/AAPL.txt", sep="\t", header=None, dtype={0: str})
    mv = dict(zip(pre[0], pre[1], strict=True))
    aapl = table.rows[table.rows["ticker"] == "AAPL"]
    for d, y in zip(aapl["date"], aapl["label"], strict=True):
        assert (mv[d] > 0.0055 and y == 1) or (mv[d] <= -0.005 and y == 0)
    rej = table.rejected[table.rejected["ticker"] == "AAPL"]
    assert all(-0.005 < mv[d] <= 0.0055 for d in rej["date"])


def test_inputs_come_only_from_before_t(table, data_root):
    raw = pd.read_csv(data_root / "stocknet/price/raw/AAPL.csv")
    aapl = table.rows[(table.rows["ticker"] == "AAPL") & (table.rows["split"] == "test")]
    row = aapl[pd.to_datetime(aapl["date"]).dt.day_of_week == 0].iloc[0]  # a Monday: the window spans a weekend
    t = row["date"]
    i = int(np.searchsorted(raw["Date"].to_numpy(), t))
    expect = raw.iloc[i - 6 : i][["Open", "High", "Low", "Close", "Volume"]].to_numpy()
    assert np.array(row["series"]).shape == (6, 5) and np.allclose(np.array(row["series"]), expect)
    first_day = raw["Date"].iloc[i - 5]  # the lag window: the 5 trading days before t
    with open(data_root / "stocknet/tweet/preprocessed/AAPL.jsonl", encoding="utf-8") as f:
        tweets = pd.DataFrame([json.loads(line) for line in f])
    window = tweets[(tweets["date"] >= first_day) & (tweets["date"] < t)]
    assert row["n_tweets"] == len(window) > 0
    assert window["date"].nunique() > 5  # weekend tweets count
    assert row["text"] == " [SEP] ".join(" ".join(t) for t in window["text"])
    img = Image.open(io.BytesIO(row["image"]))
    assert img.size == (64, 64)


def test_tweet_free_samples_are_kept_with_empty_text(table):
    none = table.rows[table.rows["n_tweets"] == 0]
    assert len(none) > 0 and (none["text"] == "").all()
    assert (table.rows.loc[table.rows["ticker"] == "GMRE"].shape[0]) == 0  # GMRE prices start in 2016


def test_max_rows_per_split_is_deterministic(table, data_root):
    small = load_source("stocknet", DataSection(max_rows_per_split=20), root=data_root)
    small.check_reconciled()
    assert small.split_counts() == {"test": 20, "train": 20, "validation": 20}
    for split in ("train", "validation", "test"):
        full = table.rows[table.rows["split"] == split]
        full = full.iloc[np.linspace(0, len(full) - 1, 20).round().astype(int)]  # evenly spaced through the split
        part = small.rows[small.rows["split"] == split]
        assert part["id"].tolist() == full["id"].tolist()
        assert part["image"].tolist() == full["image"].tolist()


def test_broken_copy(data_root, tmp_path, copy_tools):
    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "stocknet", tmp_path)
    pre = (data_root / "stocknet/price/preprocessed/ABB.txt").read_text().splitlines()
    pre[3] = pre[3].rsplit("\t", 1)[0]
    replace_file(root, "stocknet", "price/preprocessed/ABB.txt", ("\n".join(pre) + "\n").encode())
    with pytest.raises(DataFileError, match=r"ABB\.txt") as err:
        load_source("stocknet", DataSection(max_rows_per_split=1), root=root)
    assert "stocknet" in str(err.value) and "yumoxu/stocknet-dataset" in str(err.value)
    replace_file(root, "stocknet", "price/preprocessed/ABB.txt", src=data_root / "stocknet/price/preprocessed/ABB.txt")
    lines = (data_root / "stocknet/tweet/preprocessed/ABB.jsonl").read_text().splitlines()
    lines[2] = lines[2][:30]
    replace_file(root, "stocknet", "tweet/preprocessed/ABB.jsonl", ("\n".join(lines) + "\n").encode())
    with pytest.raises(DataFileError, match=r"ABB\.jsonl"):
        load_source("stocknet", DataSection(max_rows_per_split=1), root=root)
    assert json.loads(lines[0])["date"]


def test_stock_list_comes_from_the_data_sets_own_tables(table, data_root, tmp_path, copy_tools):
    from actors.sources import SOURCES
    from actors.sources.stocknet import STOCK_TABLE, stock_tickers, tweeted_tickers

    spec = SOURCES["stocknet"]

    folder = data_root / "stocknet"
    tickers, tweeted = stock_tickers(folder), tweeted_tickers(folder)
    assert len(tickers) == 88 and tweeted == set(tickers) - {"GMRE"}  # GMRE has no tweet folder in the source
    assert len(spec.required_files(data_root)) == 2 + 88 + 88 + 87
    assert set(table.rows["ticker"]) <= set(tickers)

    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "stocknet", tmp_path)
    lines = (folder / STOCK_TABLE).read_text().splitlines()
    kept = [line for line in lines[1:] if line.split("\t")[1] in ("$AAPL", "$ABB")]
    replace_file(root, "stocknet", STOCK_TABLE, ("\n".join([lines[0], *kept]) + "\n").encode())
    two = load_source("stocknet", DataSection(), root=root)
    assert set(two.rows["ticker"]) == {"AAPL", "ABB"}
    assert len(two.files) == 2 + 2 + 2 + 2

    replace_file(root, "stocknet", STOCK_TABLE, b"Sector\tTicker\tCompany\nX\t$AAPL\tApple\n")
    with pytest.raises(DataFileError, match=r"StockTable\.tsv") as err:
        load_source("stocknet", DataSection(), root=root)
    assert "Symbol" in str(err.value)
