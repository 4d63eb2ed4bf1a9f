"""The Serve app over real HTTP on 127.0.0.1: one deployment of the whole graph for the module (`app_url`,
tests/serve/conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import zlib

import httpx
import pytest

pytestmark = pytest.mark.timeout(300)

BARS = [[10 + i, 11 + i, 9 + i, 10.5 + i, 1000 + 10 * i] for i in range(10)]


@pytest.fixture(scope="module")
def client(app_url):
    with httpx.Client(base_url=app_url, timeout=60) as c:
        yield c


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


# ------------------------------------------------------------------------------------- endpoints
def test_health_ready_models_and_request_id(client, model_bundle):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    r = client.get("/v1/models", headers={"X-Request-ID": "req-123"})
    assert r.headers["x-request-id"] == "req-123"
    info = r.json()
    assert info["checkpoint_sha256"] == hashlib.sha256((model_bundle / "model.safetensors").read_bytes()).hexdigest()
    assert set(info["heads"]) == {"credit_risk", "stock_movement", "sentiment", "intent"}
    assert info["evaluation"] == {} and info["trained_at"]


def test_openapi_publishes_credit_features(client):
    spec = client.get("/openapi.json").json()
    features = spec["components"]["schemas"]["CreditFeatures"]["properties"]
    assert "loan_amnt" in features and "grade" in features
    assert "known values" in features["grade"]["description"]
    assert {"/v1/credit-risk", "/v1/stock-movement", "/v1/sentiment", "/v1/customer-service"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_sentiment_single_list_and_chinese(client):
    one = client.post("/v1/sentiment", json={"text": "Profits rose sharply this quarter"})
    assert one.status_code == 200, one.text
    res = one.json()["results"][0]
    assert res["label"] in ("negative", "neutral", "positive")
    assert abs(sum(res["probabilities"].values()) - 1) < 1e-3
    assert [w["word"] for w in res["words"]] == ["profits", "rose", "sharply", "this", "quarter"]
    assert "backbone;dur=" in one.headers["server-timing"] and "total;dur=" in one.headers["server-timing"]
    many = client.post("/v1/sentiment", json={"texts": ["利润大幅下降", "Profits rose sharply this quarter"]}).json()
    assert len(many["results"]) == 2
    # answered in order: the second equals the single answer above (bf16 batching noise allowed)
    for k, p in res["probabilities"].items():
        assert abs(many["results"][1]["probabilities"][k] - p) < 0.02


def test_credit_risk(client):
    from serve.preprocess import risk_grade

    r = client.post("/v1/credit-risk", json={"features": {"loan_amnt": 12000, "int_rate": 0.13, "grade": "C",
                                                           "purpose": "car"}, "text": "title: car loan"})
    assert r.status_code == 200, r.text
    body = r.json()
    p = body["probability_of_default"]
    assert 0 <= p <= 1 and body["risk_grade"] == risk_grade(p)
    assert body["decision"] == ("decline" if p >= body["threshold"] else "approve")
    assert len(body["reason_codes"]) <= 4
    assert all(rc["attribution"] > 0 for rc in body["reason_codes"])


def test_stock_movement_renders_or_takes_chart(client):
    from actors.chart import render_candlestick

    r = client.post("/v1/stock-movement", json={"ticker": "AAPL", "bars": BARS, "texts": ["$AAPL beats estimates"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["chart_rendered"] is True and body["direction"] in ("up", "down")
    assert set(body["contributions"]) == {"text", "image", "series"}
    chart = base64.b64encode(render_candlestick(__import__("numpy").array(BARS, dtype=float), 64)).decode()
    r2 = client.post("/v1/stock-movement", json={"ticker": "AAPL", "bars": BARS, "chart_image": chart})
    assert r2.status_code == 200 and r2.json()["chart_rendered"] is False


def test_customer_service_follow_up_uses_context(client):
    first = client.post("/v1/customer-service", json={"message": "I lost my card", "conversation_id": "conv-1"})
    assert first.status_code == 200, first.text
    a = first.json()
    assert a["turn"] == 1 and a["answer"] and a["sentiment"] in ("negative", "neutral", "positive")
    follow = client.post("/v1/customer-service",
                         json={"message": "and how long will that take?", "conversation_id": "conv-1"}).json()
    assert follow["turn"] == 2
    if follow["answer_source"] == "context":  # the tiny random model is never confident: context applies
        assert follow["intent"] == a["intent"] and follow["handoff"] is True
    alone = client.post("/v1/customer-service", json={"message": "and how long will that take?"}).json()
    assert alone["turn"] == 1 and alone["answer_source"] in ("intent", "retrieval")


# ------------------------------------------------------------------------------------- bad input
BAD = [
    ("malformed json", "/v1/sentiment", b'{"text": ', 422, "body"),
    ("wrong type", "/v1/sentiment", {"text": 5}, 422, "text"),
    ("missing field", "/v1/customer-service", {"conversation_id": "x"}, 422, "message"),
    ("NaN token", "/v1/credit-risk", b'{"features": {"loan_amnt": NaN}}', 422, "body"),
    ("Infinity token", "/v1/stock-movement", b'{"ticker": "A", "bars": [[1, 2, Infinity, 1, 1]]}', 422, "body"),
    ("too few bars", "/v1/stock-movement", {"ticker": "A", "bars": BARS[:3]}, 422, "bars"),
    ("too many bars", "/v1/stock-movement", {"ticker": "A", "bars": BARS * 60}, 422, "bars"),
    ("bar of 4 values", "/v1/stock-movement", {"ticker": "A", "bars": [[1, 2, 3, 4]] * 6}, 422, "bars"),
    ("text over limit", "/v1/sentiment", {"text": "word " * 2000}, 422, "text"),
    ("too many texts", "/v1/sentiment", {"texts": ["a"] * 65}, 422, "texts"),
    ("text and texts", "/v1/sentiment", {"text": "a", "texts": ["b"]}, 422, "body"),
    ("unknown feature", "/v1/credit-risk", {"features": {"shoe_size": 9}}, 422, "shoe_size"),
    ("all features missing", "/v1/credit-risk", {"features": {}}, 422, "features"),
    ("image not base64", "/v1/credit-risk", {"features": {"loan_amnt": 1}, "image": "%%%"}, 400, "image"),
    ("corrupt image", "/v1/customer-service",
     {"message": "hi", "image": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"x" * 40).decode()}, 400, "image"),
    ("decompression bomb", "/v1/credit-risk",
     {"features": {"loan_amnt": 1}, "image": base64.b64encode(_png_header(100_000, 100_000)).decode()}, 400, "image"),
    ("oversized body", "/v1/sentiment", {"text": "x" * 2_100_000}, 413, "body"),
]


@pytest.mark.parametrize("name,path,body,status,loc", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_4xx_with_location(client, name, path, body, status, loc):
    if isinstance(body, bytes):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["request_id"] == r.headers["x-request-id"]
    assert any(loc in [str(x) for x in d["loc"]] for d in err["detail"]), err


def test_replicas_survive_bad_input(client):
    assert client.get("/readyz").json()["ready"] is True
    assert client.post("/v1/sentiment", json={"text": "still fine"}).status_code == 200


# ---------------------------------------------------------------------------------- batching
def test_backbone_batches_concurrent_requests(app_url):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=app_url, timeout=60) as c:
            texts = [f"Quarterly revenue number {i} beat the forecast" for i in range(16)]
            return await asyncio.gather(*(c.post("/v1/sentiment", json={"text": t, "explain": False})
                                          for t in texts))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    sizes = [int(r.headers["x-batch-size"]) for r in responses]
    assert max(sizes) > 1, sizes
    stats = httpx.get(f"{app_url}/v1/stats").json()["backbone"]
    assert stats["max_batch_size"] > 1


# ------------------------------------------------------------------------------ auth, scaling
def test_api_keys_toggle(client, tmp_path):
    from serve.ops import set_user_config

    keys = tmp_path / "keys.txt"
    keys.write_text("# finmm keys\nsecret-one\nsecret-two\n")
    set_user_config("Ingress", {"api_keys_env": None, "api_keys_file": str(keys)})
    try:
        body = {"text": "hello"}
        assert client.post("/v1/sentiment", json=body).status_code == 401
        assert client.post("/v1/sentiment", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.post("/v1/sentiment", json=body, headers={"Authorization": "Bearer secret-one"})
        assert ok.status_code == 200
        assert client.post("/v1/sentiment", json=body, headers={"X-API-Key": "secret-two"}).status_code == 200
        assert client.get("/healthz").status_code == 200  # probes stay open
    finally:
        set_user_config("Ingress", {"api_keys_env": None, "api_keys_file": None})
    assert client.post("/v1/sentiment", json={"text": "hello"}).status_code == 200


def test_scale_changes_replica_count(client):
    from serve.ops import replicas, scale

    assert replicas("Sentiment") == 1
    assert scale("Sentiment", 2) == 2
    assert replicas("Sentiment") == 2
    assert client.post("/v1/sentiment", json={"text": "scaled"}).status_code == 200
    assert scale("Sentiment", 1) == 1
