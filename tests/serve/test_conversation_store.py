"""serve/conversation_store.py on both SQL backends, real SQLite files and a real private PostgreSQL server
(tests/postgres_server.py): state survives a reopen (a replica killed and replaced), ids are scoped per key,
TTL and the size bound hold, and the replica's thread pool cannot break a transaction."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from postgres_server import namespace, postgres_server  # noqa: F401 (the session's server, a fixture)

from actors.sql_store import DATABASE_URL_ENV
from serve.conversation_store import (
    CONVERSATION,
    SERVER_NAMESPACE,
    MemoryConversations,
    SqlConversations,
    key_scope,
    open_conversations,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request, tmp_path):
    """sql_store(max_items, ttl_s) -> a store of this test's own, the same table again on each call: a SQLite file
    under tmp_path, or a schema of the private PostgreSQL server (or, parametrized indirectly, the memory LRU)."""
    if request.param == "memory":
        yield MemoryConversations
        return
    where, ns = tmp_path / "c.sqlite", None
    if request.param == "postgresql":
        where, ns = request.getfixturevalue("postgres_server"), namespace()
    opened: list[SqlConversations] = []

    def open_(max_items: int, ttl_s: float) -> SqlConversations:
        opened.append(SqlConversations(where, max_items, ttl_s, ns))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


def _stored_text(store: SqlConversations) -> str:
    """Every row of the store's table as text: what the database holds of the conversations."""
    with store.engine.connect() as con:
        return repr(con.execute(sa.select(CONVERSATION)).all())


def test_state_survives_a_reopen_and_is_scoped_per_key(sql_store, tmp_path):
    a, b = key_scope("key-a"), key_scope("key-b")
    assert a != b and len(a) == 64 and key_scope(None) == key_scope("") == ""
    store = sql_store(max_items=100, ttl_s=60)
    store.put(a, "c-1", {"intent": 3, "confidence": 0.9, "turn": 1})
    del store  # no close: as a killed process leaves it
    again = sql_store(max_items=100, ttl_s=60)
    assert again.get(a, "c-1") == {"intent": 3, "confidence": 0.9, "turn": 1}
    assert again.get(b, "c-1") is None and again.get("", "c-1") is None
    assert a in _stored_text(again) and "key-a" not in _stored_text(again)  # only the key's hash is stored
    if again.engine.dialect.name == "sqlite":
        assert b"key-a" not in (tmp_path / "c.sqlite").read_bytes()


@pytest.mark.parametrize("sql_store", ["sqlite", "postgresql", "memory"], indirect=True)
def test_ttl_and_size_bound(sql_store):
    store = sql_store(max_items=3, ttl_s=0.3)
    for i in range(5):
        store.put("", f"c-{i}", {"turn": i})
    assert store.size() == 3 and store.get("", "c-0") is None and store.get("", "c-4") == {"turn": 4}
    store.put("", "c-2", {"turn": 9})  # a new turn makes c-2 the most recent: c-3 goes next
    store.put("", "c-5", {"turn": 5})
    assert store.get("", "c-3") is None and store.get("", "c-2") == {"turn": 9}
    time.sleep(0.4)
    assert store.get("", "c-4") is None


def test_threads_share_one_store_without_nested_transactions(sql_store):
    """Serve runs sync methods in a thread pool: 8 threads x 50 puts and gets on one store, no error."""
    store = sql_store(max_items=10_000, ttl_s=60)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(50):
                store.put(key_scope(f"k{k}"), f"c-{i}", {"turn": i})
                assert store.get(key_scope(f"k{k}"), f"c-{i}") == {"turn": i}
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert store.size() == 400


def test_memory_store_is_the_old_lru():
    store = MemoryConversations(max_items=2, ttl_s=60)
    store.put("", "a", {"turn": 1})
    store.put("", "b", {"turn": 1})
    store.put("", "a", {"turn": 2})  # a is now the most recent
    store.put("", "c", {"turn": 1})
    assert store.get("", "b") is None and store.get("", "a") == {"turn": 2}


def test_open_conversations_picks_the_backend_and_the_server_url_from_the_environment(
        tmp_path, monkeypatch, postgres_server):  # noqa: F811
    assert isinstance(open_conversations("memory", None, 10, 60), MemoryConversations)
    assert open_conversations("sqlite", tmp_path / "c.sqlite", 10, 60).engine.dialect.name == "sqlite"
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    with pytest.raises(ValueError, match=DATABASE_URL_ENV):
        open_conversations("postgresql", tmp_path / "ignored.sqlite", 10, 60)
    monkeypatch.setenv(DATABASE_URL_ENV, postgres_server)
    store = open_conversations("postgresql", tmp_path / "ignored.sqlite", 10, 60)
    store.put("", "c-1", {"turn": 1})
    with sa.create_engine(postgres_server).connect() as con:
        rows = con.execute(sa.text(f"SELECT id FROM {SERVER_NAMESPACE}.conversation")).scalars().all()
    assert "c-1" in rows and not (tmp_path / "ignored.sqlite").exists()
    store.close()
    with pytest.raises(ValueError, match="sqlite, postgresql or memory"):
        open_conversations("redis", None, 10, 60)
