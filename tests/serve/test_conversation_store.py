"""serve/conversation_store.py on real SQLite files: state survives a reopen (a replica killed and replaced),
ids are scoped per key, TTL and the size bound hold, and the replica's thread pool cannot break a transaction."""

from __future__ import annotations

import threading
import time

import pytest

from serve.conversation_store import MemoryConversations, SqliteConversations, key_scope, open_conversations


def test_state_survives_a_reopen_and_is_scoped_per_key(tmp_path):
    a, b = key_scope("key-a"), key_scope("key-b")
    assert a != b and len(a) == 64 and key_scope(None) == key_scope("") == ""
    store = SqliteConversations(tmp_path / "c.sqlite", max_items=100, ttl_s=60)
    store.put(a, "c-1", {"intent": 3, "confidence": 0.9, "turn": 1})
    del store  # no close: as a killed process leaves it
    again = SqliteConversations(tmp_path / "c.sqlite", max_items=100, ttl_s=60)
    assert again.get(a, "c-1") == {"intent": 3, "confidence": 0.9, "turn": 1}
    assert again.get(b, "c-1") is None and again.get("", "c-1") is None
    assert b"key-a" not in (tmp_path / "c.sqlite").read_bytes()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_ttl_and_size_bound(tmp_path, kind):
    store = open_conversations(kind, tmp_path / "c.sqlite", max_items=3, ttl_s=0.3)
    for i in range(5):
        store.put("", f"c-{i}", {"turn": i})
    assert store.size() == 3 and store.get("", "c-0") is None and store.get("", "c-4") == {"turn": 4}
    time.sleep(0.4)
    assert store.get("", "c-4") is None


def test_threads_share_one_store_without_nested_transactions(tmp_path):
    """Serve runs sync methods in a thread pool: 8 threads x 50 puts and gets on one store, no error."""
    store = SqliteConversations(tmp_path / "c.sqlite", max_items=10_000, ttl_s=60)
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
