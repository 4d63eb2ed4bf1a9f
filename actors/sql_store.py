"""Where a served store's tables live, as one SQLAlchemy engine: a SQLite file (the default: embedded, no server
to start) or a PostgreSQL server (a shared store, for replicas on several nodes). The stores (actors/opinion.py's
OpinionStore, serve/conversation_store.py's SqlConversations) are written once, in SQLAlchemy Core, for both.

- **SQLite**: `where` is a file path. WAL, synchronous=FULL, a 10 s busy timeout. The sqlite3 driver's own
  BEGIN is turned off and a write transaction starts with BEGIN IMMEDIATE, so it holds the write lock from its
  first statement (SQLAlchemy's documented recipe for the driver's legacy transaction mode).
- **PostgreSQL**: `where` is a URL `postgresql://user[:password]@host[:port]/database` (driver psycopg 3).
  Each store's tables live in a schema of their own, `namespace`, created when missing: the opinion shards
  share one database, each in its schema, as each has its own file with SQLite. A commit returns once the
  server has it (the server's `synchronous_commit`, on by default). Pooled connections are checked before use
  (pool_pre_ping), so a restarted server costs a reconnect, not an error.

**The URL is a secret** (it may hold a password): the serving side reads it from `$FINMM_DATABASE_URL`
(`server_url`), never from the config, and shows it only masked (`masked`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateSchema

DATABASE_URL_ENV = "FINMM_DATABASE_URL"
"""Environment variable holding the server store's URL, in every replica that opens a server store."""
DIALECTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
"""The dialects the stores are written for, each with its INSERT ... ON CONFLICT construct."""
SQLITE_TIMEOUT_S = 10.0
"""How long a SQLite statement waits for another connection's write lock."""


def is_url(where: str | Path) -> bool:
    """True for a database URL (`scheme://...`), False for a SQLite file path."""
    return isinstance(where, str) and "://" in where


def masked(url: str) -> str:
    """`url` with its password replaced by ***, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "<a database URL that cannot be parsed>"


def server_url() -> str:
    """The server store's URL from $FINMM_DATABASE_URL; a ValueError saying so when it is unset."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        raise ValueError(f"a postgresql store needs ${DATABASE_URL_ENV} (postgresql://user@host:port/database) in "
                         "the environment of its replicas; see docs/opinion.md")
    return url


def open_engine(where: str | Path, metadata: sa.MetaData, namespace: str | None = None) -> sa.Engine:
    """An engine on `where` (a SQLite file path or a PostgreSQL URL) with `metadata`'s tables created.
    `namespace`: the schema a server store's tables live in (None: the URL's default schema)."""
    if is_url(where):
        engine = _server(where, namespace)
    elif namespace is not None:
        raise ValueError("a namespace is for a server store; a SQLite store is a file of its own")
    else:
        engine = sqlite_engine(Path(where))
    with write(engine) as con:
        if namespace is not None:
            con.execute(CreateSchema(namespace, if_not_exists=True))
        metadata.create_all(con)
    return engine


def sqlite_engine(path: Path, readonly: bool = False) -> sa.Engine:
    """The engine on the SQLite file at `path` (see the module docstring); `readonly` opens an existing file
    read-only (mode=ro) and changes nothing in it."""
    if readonly:
        return sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(sa.URL.create("sqlite", database=str(path)),
                              connect_args={"timeout": SQLITE_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_con, _record) -> None:
        dbapi_con.isolation_level = None  # the driver emits no BEGIN; `_begin` does
        dbapi_con.execute("PRAGMA journal_mode=WAL")
        dbapi_con.execute("PRAGMA synchronous=FULL")

    @sa.event.listens_for(engine, "begin")
    def _begin(con: sa.Connection) -> None:
        con.exec_driver_sql("BEGIN IMMEDIATE" if con.get_execution_options().get("write") else "BEGIN")

    return engine


def _server(url: str, namespace: str | None) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ValueError(f"${DATABASE_URL_ENV} is not a database URL (postgresql://user@host:port/database)") from None
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported server store {masked(url)}: the stores are written for postgresql")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2,
                              connect_args={"connect_timeout": 10, "application_name": "finmm"})
    return engine.execution_options(schema_translate_map={None: namespace}) if namespace else engine


@contextmanager
def write(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction: committed when the block ends (and so before the caller answers), rolled back on an
    error. BEGIN IMMEDIATE on SQLite."""
    with engine.connect() as con:
        con.execution_options(write=True)
        with con.begin():
            yield con


def insert(engine: sa.Engine | sa.Connection, table: sa.Table):
    """`table`'s INSERT in the engine's dialect, with `.on_conflict_do_nothing()` / `.on_conflict_do_update()`."""
    return DIALECTS[engine.dialect.name](table)
