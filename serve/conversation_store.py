"""Customer-service conversation state behind the ConversationStore deployment (serve/deployments.py).

- `SqliteConversations` (the default, `serve.conversations.backend: sqlite`): one row per (key scope,
  conversation id) in a SQLite file under `serve.state_dir` (WAL, synchronous=FULL). A turn's `put` is
  committed before the turn is answered, so a killed store replica comes back (Serve starts a new one on the
  same file) with every conversation it acknowledged.
- `MemoryConversations` (`backend: memory`): the former in-process LRU; lost with its replica.

Both keep at most `max_items` conversations (least recently updated dropped first) and forget one `ttl_s`
after its last turn, by wall-clock time (it has to survive a restart).

**Key scope.** With API keys on, the ingress passes `key_scope(key)`, a SHA-256 of the caller's key (the key
itself is never stored or sent on), and a conversation is looked up by (scope, id): the same id under
another key is another conversation. Without keys the scope is "".

**Threads.** Serve runs a replica's sync methods in a thread pool: one sqlite3 connection shared by threads
fails with "cannot start a transaction within a transaction" under load, so every transaction here holds
the store's lock (one connection, one transaction at a time; a turn's statements take well under 1 ms).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation (
    scope TEXT NOT NULL, id TEXT NOT NULL, entry TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (scope, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversation_by_time ON conversation (updated);
"""


def key_scope(key: str | None) -> str:
    """The scope a conversation id lives in: "" without API keys, else SHA-256 of the key (hex)."""
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


class MemoryConversations:
    """In-process LRU of (scope, id) -> entry; lost when its replica dies."""

    def __init__(self, max_items: int, ttl_s: float):
        self.max_items, self.ttl_s = max_items, ttl_s
        self.items: OrderedDict[tuple[str, str], dict] = OrderedDict()
        self.lock = threading.Lock()

    def _expire(self, now: float) -> None:
        # ordered by last turn (put moves to the end), so the stalest is always first
        while self.items and now - next(iter(self.items.values()))["updated"] > self.ttl_s:
            self.items.popitem(last=False)
        while len(self.items) > self.max_items:
            self.items.popitem(last=False)

    def get(self, scope: str, conversation_id: str) -> dict | None:
        with self.lock:
            self._expire(time.time())
            entry = self.items.get((scope, conversation_id))
            return None if entry is None else {k: v for k, v in entry.items() if k != "updated"}

    def put(self, scope: str, conversation_id: str, entry: dict) -> None:
        with self.lock:
            now = time.time()
            self.items[(scope, conversation_id)] = {**entry, "updated": now}
            self.items.move_to_end((scope, conversation_id))
            self._expire(now)

    def size(self) -> int:
        with self.lock:
            return len(self.items)


class SqliteConversations:
    """(scope, id) -> entry (JSON) in the SQLite file at `path`; see the module docstring."""

    def __init__(self, path: str | Path, max_items: int, ttl_s: float):
        self.path, self.max_items, self.ttl_s = Path(path), max_items, ttl_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.executescript(SCHEMA)
        self.lock = threading.Lock()
        """Held around every transaction: the replica's thread pool shares the one connection."""

    def close(self) -> None:
        self.con.close()

    def get(self, scope: str, conversation_id: str) -> dict | None:
        with self.lock:
            row = self.con.execute("SELECT entry FROM conversation WHERE scope = ? AND id = ? AND updated >= ?",
                                   (scope, conversation_id, time.time() - self.ttl_s)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, scope: str, conversation_id: str, entry: dict) -> None:
        """Store the conversation's entry; committed (fsynced) when this returns."""
        now = time.time()
        with self.lock:
            con = self.con
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("INSERT OR REPLACE INTO conversation VALUES (?, ?, ?, ?)",
                            (scope, conversation_id, json.dumps(entry), now))
                con.execute("DELETE FROM conversation WHERE updated < ?", (now - self.ttl_s,))
                (n,) = con.execute("SELECT COUNT(*) FROM conversation").fetchone()
                if n > self.max_items:  # drop the least recently updated
                    con.execute("DELETE FROM conversation WHERE (scope, id) IN (SELECT scope, id FROM conversation "
                                "ORDER BY updated LIMIT ?)", (n - self.max_items,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def size(self) -> int:
        with self.lock:
            return self.con.execute("SELECT COUNT(*) FROM conversation").fetchone()[0]


def open_conversations(backend: str, path: str | Path | None, max_items: int, ttl_s: float):
    """The store `serve.conversations.backend` names."""
    if backend == "memory":
        return MemoryConversations(max_items, ttl_s)
    if backend == "sqlite":
        if path is None:
            raise ValueError("the sqlite conversation store needs a path (serve.state_dir)")
        return SqliteConversations(path, max_items, ttl_s)
    raise ValueError(f"unknown conversation store backend {backend!r}: sqlite or memory")
