"""The opinion monitor's state (actors/opinion.py) on real SQLite files: order within a window, restarts,
duplicates, compaction and alerts."""

from __future__ import annotations

import random
import sqlite3

import pytest

from actors.opinion import MonitorParams, OpinionStore, ScoredItem, daily_frame, item_id

DAY = 86400
T0 = 1_443_657_600  # 2015-10-01T00:00:00Z


def _items(days: int, per_day: int, tickers=("AAPL", "MSFT"), seed: int = 0) -> list[ScoredItem]:
    rng = random.Random(seed)
    out = []
    for d in range(days):
        for ticker in tickers:
            for k in range(per_day):
                t = T0 + d * DAY + rng.uniform(0, DAY - 1)
                score = rng.uniform(-1, 1)
                label = "positive" if score > 0.3 else "negative" if score < -0.3 else "neutral"
                out.append(ScoredItem(f"{ticker}-{d}-{k}", ticker, t, score, label))
    return sorted(out, key=lambda i: i.t)


def _state(store: OpinionStore, tickers=("AAPL", "MSFT")) -> dict:
    return {(t, w): store.series(t, w) for t in tickers for w in store.p.windows_s}


def test_another_arrival_order_within_each_window_gives_the_same_index(tmp_path):
    items = _items(days=6, per_day=40)
    a = OpinionStore(tmp_path / "a.sqlite")
    a.ingest(items)
    # the same items, shuffled within each hour (the smallest window) and sent in batches of other sizes
    rng = random.Random(1)
    by_hour: dict[int, list[ScoredItem]] = {}
    for it in items:
        by_hour.setdefault(int(it.t // 3600), []).append(it)
    shuffled = []
    for hour in sorted(by_hour):
        group = by_hour[hour][:]
        rng.shuffle(group)
        shuffled += group
    assert shuffled != items
    b = OpinionStore(tmp_path / "b.sqlite")
    for i in range(0, len(shuffled), 7):
        b.ingest(shuffled[i:i + 7])
    assert _state(a) == _state(b)  # exactly equal, floats included
    assert len(a.series("AAPL", DAY)) == 6


def test_mean_shares_and_ew_are_what_the_items_say(tmp_path):
    s = OpinionStore(tmp_path / "s.sqlite", MonitorParams(windows_s=(DAY,), ew_decay=0.5))
    s.ingest([ScoredItem("1", "X", T0 + 10, 0.5, "positive"), ScoredItem("2", "X", T0 + 20, -0.25, "negative"),
              ScoredItem("3", "X", T0 + 30, 0.0, "neutral"), ScoredItem("4", "X", T0 + 2 * DAY, 1.0, "positive")])
    d0, d2 = s.series("X", DAY)
    assert d0 == {"start": T0, "n": 3, "mean": pytest.approx(0.25 / 3), "ew": pytest.approx(0.25 / 3),
                  "pos_share": pytest.approx(1 / 3), "neg_share": pytest.approx(1 / 3)}
    # two windows later the first day weighs 0.5^2 per item
    assert d2["ew"] == pytest.approx((0.25 * 0.25 + 1.0) / (0.25 * 3 + 1))
    assert s.series("X", DAY, T0 + DAY, None) == [d2]
    assert s.latest("X", T0 + DAY)[0]["n"] == 0


def test_a_reopened_store_resumes_with_its_state_and_duplicates_change_nothing(tmp_path):
    items = _items(days=3, per_day=10)
    s = OpinionStore(tmp_path / "s.sqlite")
    assert set(s.ingest(items[:30])) == {"accepted"}
    before = _state(s)
    s.close()
    s = OpinionStore(tmp_path / "s.sqlite")
    assert _state(s) == before
    assert s.ingest(items[:30]) == ["duplicate"] * 30  # a retried batch is not counted twice
    assert _state(s) == before
    s.ingest(items[30:])
    whole = OpinionStore(tmp_path / "whole.sqlite")
    whole.ingest(items)
    assert _state(s) == _state(whole)
    assert item_id("A", 1.0, "x", None) == item_id("A", 1.0, "x", None) != item_id("A", 1.0, "y", None)


def test_old_windows_are_compacted_and_the_ew_index_stays_exact(tmp_path):
    items = _items(days=30, per_day=5, tickers=("AAPL",))
    small = OpinionStore(tmp_path / "small.sqlite", MonitorParams(windows_s=(DAY,), retain_windows=6, alert_history=4))
    full = OpinionStore(tmp_path / "full.sqlite", MonitorParams(windows_s=(DAY,), retain_windows=1000))
    for i in range(0, len(items), 5):
        small.ingest(items[i:i + 5])
        full.ingest(items[i:i + 5])
    kept = small.series("AAPL", DAY)
    assert len(kept) == 6
    assert small.con.execute("SELECT COUNT(*) FROM opinion_window").fetchone()[0] == 6
    assert small.con.execute("SELECT COUNT(*) FROM opinion_seen").fetchone()[0] <= 6 * 5
    tail = full.series("AAPL", DAY)[-6:]
    assert [p["start"] for p in kept] == [p["start"] for p in tail]
    for a, b in zip(kept, tail, strict=True):
        assert a["ew"] == pytest.approx(b["ew"], rel=1e-12) and a["mean"] == b["mean"]
    assert small.ingest([ScoredItem("old", "AAPL", T0 + 60, 0.9, "positive")]) == ["late"]
    with pytest.raises(ValueError):
        OpinionStore(tmp_path / "bad.sqlite", MonitorParams(retain_windows=5, alert_history=5))


def test_a_turn_in_opinion_raises_one_alert_for_its_window(tmp_path):
    s = OpinionStore(tmp_path / "s.sqlite", MonitorParams(windows_s=(DAY,), alert_k=3.0, alert_min_items=5))
    rng = random.Random(0)
    quiet = [ScoredItem(f"q{d}-{k}", "TSLA", T0 + d * DAY + k, rng.uniform(-0.1, 0.1), "neutral")
             for d in range(10) for k in range(8)]
    s.ingest(quiet)
    assert s.alerts() == []
    turn = [ScoredItem(f"t{k}", "TSLA", T0 + 10 * DAY + k, -0.9, "negative") for k in range(8)]
    s.ingest(turn[:4])
    assert s.alerts() == []  # fewer than alert_min_items in the window
    s.ingest(turn[4:], now=123.0)
    (alert,) = s.alerts()
    assert alert["ticker"] == "TSLA" and alert["start"] == T0 + 10 * DAY and alert["n"] == 8
    assert alert["z"] < -3 and alert["raised_at"] == 123.0
    assert s.alerts(since=124.0) == []


def test_the_store_is_wal_and_daily_frame_reads_it(tmp_path):
    s = OpinionStore(tmp_path / "s.sqlite")
    s.ingest(_items(days=2, per_day=3))
    assert s.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    frame = daily_frame(tmp_path / "s.sqlite")
    assert list(frame.ticker.unique()) == ["AAPL", "MSFT"] and len(frame) == 4
    assert frame.n.sum() == 12
    sqlite3.connect(tmp_path / "s.sqlite").close()


def test_batches_from_many_threads_on_one_store_are_each_one_transaction(tmp_path):
    """Serve runs an actor's sync methods in a thread pool: concurrent batches on the one connection must not
    start a transaction inside another (sqlite3.OperationalError) and must all count."""
    from concurrent.futures import ThreadPoolExecutor

    items = _items(days=4, per_day=50)
    s = OpinionStore(tmp_path / "s.sqlite")
    batches = [items[i:i + 5] for i in range(0, len(items), 5)]
    with ThreadPoolExecutor(8) as pool:
        statuses = [x for out in pool.map(s.ingest, batches) for x in out]
        list(pool.map(lambda _: s.series("AAPL", DAY), range(16)))
    assert statuses == ["accepted"] * len(items)
    whole = OpinionStore(tmp_path / "whole.sqlite")
    whole.ingest(items)
    assert _state(s) == _state(whole)
