"""The opinion monitor's state (actors/opinion.py) on both backends, real SQLite files and a real private
PostgreSQL server (tests/postgres_server.py): order within a window, restarts, duplicates, compaction, alerts
and threads."""

from __future__ import annotations

import random
import sqlite3

import pytest
import sqlalchemy as sa
from postgres_server import namespace, postgres_server  # noqa: F401 (the session's server, a fixture)

from actors.opinion import SEEN, WINDOW, MonitorParams, OpinionStore, ScoredItem, daily_frame, item_id

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


def _rows(store: OpinionStore, table: sa.Table) -> int:
    with store.engine.connect() as con:
        return con.scalar(sa.select(sa.func.count()).select_from(table))


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request, tmp_path):
    """open_store(name, params) -> a store of this test's own, the same one again for the same name: a SQLite file
    under tmp_path, or a schema of the private PostgreSQL server. Closed at the end of the test."""
    where, ns = tmp_path, None
    if request.param == "postgresql":
        where, ns = request.getfixturevalue("postgres_server"), namespace()
    opened: list[OpinionStore] = []

    def open_(name: str, params: MonitorParams = MonitorParams()) -> OpinionStore:
        store = (OpinionStore(where / f"{name}.sqlite", params) if ns is None else
                 OpinionStore(where, params, namespace=f"{ns}_{name}"))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def test_another_arrival_order_within_each_window_gives_the_same_index(open_store):
    items = _items(days=6, per_day=40)
    a = open_store("a")
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
    b = open_store("b")
    for i in range(0, len(shuffled), 7):
        b.ingest(shuffled[i:i + 7])
    assert _state(a) == _state(b)  # exactly equal, floats included
    assert len(a.series("AAPL", DAY)) == 6


def test_mean_shares_and_ew_are_what_the_items_say(open_store):
    s = open_store("s", MonitorParams(windows_s=(DAY,), ew_decay=0.5))
    s.ingest([ScoredItem("1", "X", T0 + 10, 0.5, "positive"), ScoredItem("2", "X", T0 + 20, -0.25, "negative"),
              ScoredItem("3", "X", T0 + 30, 0.0, "neutral"), ScoredItem("4", "X", T0 + 2 * DAY, 1.0, "positive")])
    d0, d2 = s.series("X", DAY)
    assert d0 == {"start": T0, "n": 3, "mean": pytest.approx(0.25 / 3), "ew": pytest.approx(0.25 / 3),
                  "pos_share": pytest.approx(1 / 3), "neg_share": pytest.approx(1 / 3)}
    # two windows later the first day weighs 0.5^2 per item
    assert d2["ew"] == pytest.approx((0.25 * 0.25 + 1.0) / (0.25 * 3 + 1))
    assert s.series("X", DAY, T0 + DAY, None) == [d2]
    assert s.latest("X", T0 + DAY)[0]["n"] == 0


def test_a_reopened_store_resumes_with_its_state_and_duplicates_change_nothing(open_store):
    items = _items(days=3, per_day=10)
    s = open_store("s")
    assert set(s.ingest(items[:30])) == {"accepted"}
    before = _state(s)
    s.close()
    s = open_store("s")
    assert _state(s) == before
    assert s.ingest(items[:30]) == ["duplicate"] * 30  # a retried batch is not counted twice
    assert _state(s) == before
    s.ingest(items[30:])
    whole = open_store("whole")
    whole.ingest(items)
    assert _state(s) == _state(whole)
    assert item_id("A", 1.0, "x", None) == item_id("A", 1.0, "x", None) != item_id("A", 1.0, "y", None)


def test_old_windows_are_compacted_and_the_ew_index_stays_exact(open_store):
    items = _items(days=30, per_day=5, tickers=("AAPL",))
    small = open_store("small", MonitorParams(windows_s=(DAY,), retain_windows=6, alert_history=4))
    full = open_store("full", MonitorParams(windows_s=(DAY,), retain_windows=1000))
    for i in range(0, len(items), 5):
        small.ingest(items[i:i + 5])
        full.ingest(items[i:i + 5])
    kept = small.series("AAPL", DAY)
    assert len(kept) == 6
    assert _rows(small, WINDOW) == 6
    assert _rows(small, SEEN) <= 6 * 5
    tail = full.series("AAPL", DAY)[-6:]
    assert [p["start"] for p in kept] == [p["start"] for p in tail]
    for a, b in zip(kept, tail, strict=True):
        assert a["ew"] == pytest.approx(b["ew"], rel=1e-12) and a["mean"] == b["mean"]
    assert small.ingest([ScoredItem("old", "AAPL", T0 + 60, 0.9, "positive")]) == ["late"]
    with pytest.raises(ValueError):
        open_store("bad", MonitorParams(retain_windows=5, alert_history=5))


def test_a_turn_in_opinion_raises_one_alert_for_its_window(open_store):
    s = open_store("s", MonitorParams(windows_s=(DAY,), alert_k=3.0, alert_min_items=5))
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


def test_the_sqlite_store_is_wal_and_daily_frame_reads_it(tmp_path):
    s = OpinionStore(tmp_path / "s.sqlite")
    s.ingest(_items(days=2, per_day=3))
    with s.engine.connect() as con:
        assert con.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert con.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    frame = daily_frame(tmp_path / "s.sqlite")
    assert list(frame.ticker.unique()) == ["AAPL", "MSFT"] and len(frame) == 4
    assert frame.n.sum() == 12
    with pytest.raises(sqlite3.Error):  # what `finmm evaluate --task opinion` reports
        daily_frame(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_server_shards_share_one_database_each_in_its_own_schema(postgres_server):  # noqa: F811
    """Two shards' stores in one PostgreSQL database keep their rows apart, as two SQLite files do: the same item
    id is new to each, and each lists only its own tickers and alerts."""
    ns = namespace()
    one, two = (OpinionStore(postgres_server, namespace=f"{ns}_{i}") for i in (1, 2))
    item = ScoredItem("same-id", "AAPL", T0, 0.5, "positive")
    assert one.ingest([item]) == ["accepted"]
    assert two.ingest([item, ScoredItem("other", "MSFT", T0, 0.1, "neutral")]) == ["accepted", "accepted"]
    assert one.tickers() == ["AAPL"] and two.tickers() == ["AAPL", "MSFT"]
    assert one.ingest([item]) == ["duplicate"]
    with sa.create_engine(postgres_server).connect() as con:
        schemas = set(con.scalars(sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"), {"p": f"{ns}%"}))
    assert schemas == {f"{ns}_1", f"{ns}_2"}
    one.close()
    two.close()


def test_batches_from_many_threads_on_one_store_are_each_one_transaction(open_store):
    """Serve runs an actor's sync methods in a thread pool: concurrent batches on one store must not start a
    transaction inside another (sqlite3.OperationalError) nor fold a ticker's windows twice, and must all count."""
    from concurrent.futures import ThreadPoolExecutor

    items = _items(days=4, per_day=50)
    s = open_store("s")
    batches = [items[i:i + 5] for i in range(0, len(items), 5)]
    with ThreadPoolExecutor(8) as pool:
        statuses = [x for out in pool.map(s.ingest, batches) for x in out]
        list(pool.map(lambda _: s.series("AAPL", DAY), range(16)))
    assert statuses == ["accepted"] * len(items)
    whole = open_store("whole")
    whole.ingest(items)
    assert _state(s) == _state(whole)
