"""Customer-service conversation state behind the ConversationStore deployment (serve/deployments.py).

- `SqlConversations`: one row per (key scope, conversation id), the entry as JSON, in SQL through
  actors/sql_store.py (SQLAlchemy Core, one code path for both dialects). `serve.conversations.backend: sqlite`
  (the default): a SQLite file under `serve.state_dir` (WAL, synchronous=FULL); `postgresql`: a shared server
  store at `$FINMM_DATABASE_URL`, schema `finmm_conversations`. A turn's `put` is committed before the turn is
  answered, so a killed store replica comes back (Serve starts a new one on the same file or server) with every
  conversation it acknowledged.
- `MemoryConversations` (`backend: memory`): the former in-process LRU; lost with its replica.

All keep at most `max_items` conversations (least recently updated dropped first) and forget one `ttl_s`
after its last turn, by wall-clock time (it has to survive a restart).

**Key scope.** With API keys on, the ingress passes `key_scope(key)`, a SHA-256 of the caller's key (the key
itself is never stored or sent on), and a conversation is looked up by (scope, id): the same id under
another key is another conversation. Without keys the scope is "".

**Threads.** Serve runs a replica's sync methods in a thread pool: every transaction here holds the store's
lock (one transaction at a time; a turn's statements take well under a millisecond of the database's time).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from pathlib import Path

import sqlalchemy as sa

from actors.sql_store import insert, open_engine, server_url, write

SERVER_NAMESPACE = "finmm_conversations"
"""The schema of the conversation table in a server store."""
TABLES = sa.MetaData()
CONVERSATION = sa.Table(
    "conversation", TABLES, sa.Column("scope", sa.Text, primary_key=True), sa.Column("id", sa.Text, primary_key=True),
    sa.Column("entry", sa.JSON, nullable=False), sa.Column("updated", sa.Double, nullable=False),
    sa.Index("conversation_by_time", "updated"), sqlite_with_rowid=False)
"""(scope, id) -> the conversation's entry and the wall-clock time of its last turn."""


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


class SqlConversations:
    """(scope, id) -> entry in the SQLite file or at the PostgreSQL URL `where` (schema `namespace`); see the
    module docstring."""

    def __init__(self, where: str | Path, max_items: int, ttl_s: float, namespace: str | None = None):
        self.max_items, self.ttl_s = max_items, ttl_s
        self.engine = open_engine(where, TABLES, namespace)
        self.lock = threading.Lock()
        """Held around every transaction: the replica's thread pool shares the store."""

    def close(self) -> None:
        self.engine.dispose()

    def get(self, scope: str, conversation_id: str) -> dict | None:
        c = CONVERSATION.c
        with self.lock, self.engine.connect() as con:
            return con.scalar(sa.select(c.entry).where(c.scope == scope, c.id == conversation_id,
                                                       c.updated >= time.time() - self.ttl_s))

    def put(self, scope: str, conversation_id: str, entry: dict) -> None:
        """Store the conversation's entry; committed when this returns."""
        c, now = CONVERSATION.c, time.time()
        with self.lock, write(self.engine) as con:
            row = insert(con, CONVERSATION).values(scope=scope, id=conversation_id, entry=entry, updated=now)
            con.execute(row.on_conflict_do_update(index_elements=[c.scope, c.id],
                                                  set_={"entry": row.excluded.entry, "updated": row.excluded.updated}))
            con.execute(sa.delete(CONVERSATION).where(c.updated < now - self.ttl_s))
            n = con.scalar(sa.select(sa.func.count()).select_from(CONVERSATION))
            if n > self.max_items:  # drop the least recently updated
                stalest = sa.select(c.scope, c.id).order_by(c.updated).limit(n - self.max_items)
                con.execute(sa.delete(CONVERSATION).where(sa.tuple_(c.scope, c.id).in_(stalest)))

    def size(self) -> int:
        with self.lock, self.engine.connect() as con:
            return con.scalar(sa.select(sa.func.count()).select_from(CONVERSATION))


def open_conversations(backend: str, path: str | Path | None, max_items: int, ttl_s: float):
    """The store `serve.conversations.backend` names: memory, sqlite (the file at `path`) or postgresql (the
    server at $FINMM_DATABASE_URL)."""
    if backend == "memory":
        return MemoryConversations(max_items, ttl_s)
    if backend == "postgresql":
        return SqlConversations(server_url(), max_items, ttl_s, SERVER_NAMESPACE)
    if backend == "sqlite":
        if path is None:
            raise ValueError("the sqlite conversation store needs a path (serve.state_dir)")
        return SqlConversations(path, max_items, ttl_s)
    raise ValueError(f"unknown conversation store backend {backend!r}: sqlite, postgresql or memory")
