"""actors/sql_store.py: which engine a store gets, and that a server URL's password is never shown (in an error
of a server that cannot be reached, of a URL that cannot be parsed, or of another database's URL)."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa
from postgres_server import namespace, postgres_server  # noqa: F401 (the session's server, a fixture)

from actors.opinion import TABLES, OpinionStore
from actors.sql_store import DATABASE_URL_ENV, is_url, masked, open_engine, server_url

SECRET = "s3cret-Pw"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_paths_are_sqlite_and_urls_are_servers(tmp_path, postgres_server):  # noqa: F811
    assert not is_url(tmp_path / "a.sqlite") and not is_url(str(tmp_path / "a.sqlite")) and is_url(postgres_server)
    assert open_engine(tmp_path / "a.sqlite", TABLES).dialect.name == "sqlite"
    engine = open_engine(postgres_server, TABLES, namespace())
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    engine.dispose()
    with pytest.raises(ValueError, match="a SQLite store is a file"):
        open_engine(tmp_path / "b.sqlite", TABLES, "shard_0")


def test_a_server_url_s_password_is_never_shown():
    url = f"postgresql://finmm:{SECRET}@127.0.0.1:{_closed_port()}/finmm"
    assert masked(url) == url.replace(SECRET, "***")
    with pytest.raises(sa.exc.OperationalError) as refused:
        OpinionStore(url)
    assert SECRET not in str(refused.value) and SECRET not in repr(refused.value)
    for bad in (f"mysql://finmm:{SECRET}@127.0.0.1/finmm", f"postgresql://finmm:{SECRET}@127.0.0.1:port/finmm"):
        with pytest.raises(ValueError) as refused:
            OpinionStore(bad)
        assert SECRET not in str(refused.value)
        assert SECRET not in masked(bad)


def test_the_server_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    with pytest.raises(ValueError, match=DATABASE_URL_ENV):
        server_url()
    monkeypatch.setenv(DATABASE_URL_ENV, " postgresql://u@h/db ")
    assert server_url() == "postgresql://u@h/db"
