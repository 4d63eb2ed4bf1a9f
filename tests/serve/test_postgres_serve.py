"""The shared server store in the served graph, over real HTTP on 127.0.0.1: one deployment for the module with
`serve.conversations.backend` and `serve.opinion.backend` set to postgresql, on a database of its own in the
private PostgreSQL server (tests/postgres_server.py). The replicas read its URL from $FINMM_DATABASE_URL, given
here through the app's runtime_env (the Ray cluster of the session started before this module). No SQLite file
is written; a killed ConversationStore or OpinionMonitor replica comes back with its state from the server."""

from __future__ import annotations

import time

import httpx
import pytest
import sqlalchemy as sa
from postgres_server import postgres_server  # noqa: F401 (the session's server, a fixture)
from test_opinion_serve import (
    KEY_A,
    KEY_B,
    _items,
    _kill_and_wait,
    _same_index,
    _series,
    _turn,
    free_port,
    replay_with_a_kill,
)

from actors.sql_store import DATABASE_URL_ENV

pytestmark = pytest.mark.timeout(600)
SHARDS = 2


@pytest.fixture(scope="module")
def served(ray_cluster, model_bundle, tmp_path_factory, postgres_server):  # noqa: F811
    from ray import serve

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    with sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT").connect() as con:
        con.exec_driver_sql("CREATE DATABASE finmm_served")
    url = postgres_server.rsplit("/", 1)[0] + "/finmm_served"
    tmp = tmp_path_factory.mktemp("postgres-serve")
    keys = tmp / "keys.txt"
    keys.write_text(f"{KEY_A}\n{KEY_B}\n")
    port = free_port()
    section = ServeSection(http={"host": "127.0.0.1", "port": port}, bf16=False, api_keys_file=keys,
                           state_dir=tmp / "state", conversations={"backend": "postgresql"},
                           opinion={"backend": "postgresql", "shards": SHARDS, "max_items": 16})
    config = serve_config(section, model_bundle)
    config["applications"][0]["runtime_env"]["env_vars"][DATABASE_URL_ENV] = url
    deploy(config)
    yield f"http://127.0.0.1:{port}", url, tmp / "state"
    serve.shutdown()


def _rows(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            return con.exec_driver_sql(sql).all()
    finally:
        engine.dispose()


def test_conversation_continues_from_the_server_after_its_store_replica_is_killed(served):
    url, db, state = served
    first = _turn(url, KEY_A, "My new card still has not arrived", "pg-kill-1")
    assert first["turn"] == 1
    assert _turn(url, KEY_B, "I lost my card", "pg-kill-1")["turn"] == 1  # another key: another conversation
    _kill_and_wait("ConversationStore")
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/readyz", timeout=30).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    second = _turn(url, KEY_A, "and how long will that take?", "pg-kill-1")
    assert second["turn"] == 2, second
    rows = _rows(db, "SELECT scope, id, entry::text FROM finmm_conversations.conversation WHERE id = 'pg-kill-1'")
    assert len(rows) == 2 and all(len(scope) == 64 for scope, _, _ in rows)  # one per key, by the key's hash
    assert KEY_A not in repr(rows) and KEY_B not in repr(rows)
    assert not list(state.glob("*.sqlite"))  # nothing went to a SQLite file


def test_monitor_replica_killed_during_replay_ends_with_the_same_index(served):
    from finmm.opinion_command import replay
    from serve.opinion import shard_namespace, shard_of

    url, db, state = served
    tickers = ["PGA", "PGB", "PGC", "PGD"]  # three on shard 0 (killed), one on shard 1
    assert {shard_of(t, SHARDS) for t in tickers} == set(range(SHARDS))
    stream = sorted((it for t in tickers for it in _items(t, 16, days=2, seed=len(t))), key=lambda it: it["time"])
    reference = [{**it, "ticker": "Q" + it["ticker"], "id": "Q" + it["id"]} for it in stream]
    replay(url, reference, batch=8, api_key=KEY_A)

    summary = replay_with_a_kill(url, stream, "OpinionMonitor0", after_batches=3)
    assert summary["items"] == len(stream)
    assert summary["statuses"].get("accepted", 0) + summary["statuses"].get("duplicate", 0) == len(stream)
    with httpx.Client(base_url=url, timeout=120, headers={"authorization": f"Bearer {KEY_A}"}) as client:
        for t in tickers:
            _same_index(_series(client, t), _series(client, "Q" + t))
            _same_index(_series(client, t, 3600), _series(client, "Q" + t, 3600))
        assert set(tickers) <= set(client.get("/v1/opinion").json()["tickers"])
    for i in range(SHARDS):  # each shard's tickers in its own schema, and only there
        held = {r[0] for r in _rows(db, f"SELECT DISTINCT ticker FROM {shard_namespace(i, SHARDS)}.opinion_window")}
        assert held == {t for t in tickers + ["Q" + t for t in tickers] if shard_of(t, SHARDS) == i}
    assert not list(state.glob("*.sqlite"))
