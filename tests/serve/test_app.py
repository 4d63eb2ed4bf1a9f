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


def test_openapi_links_an_answer_to_the_next_turn_of_its_conversation(client):
    """The NextTurn link (what schemathesis' stateful phase follows, bench/fuzz.py): its target is the
    customer-service operation, and following it as a generated client would continues the conversation."""
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/customer-service"]["post"]
    (name, link), = operation["responses"]["200"]["links"].items()
    assert name == "NextTurn" and link["operationId"] == operation["operationId"]
    assert link["requestBody"] == {"conversation_id": "$response.body#/conversation_id"}
    first = client.post("/v1/customer-service", json={"message": "My transfer is late", "conversation_id": "lnk-1"})
    pointer = link["requestBody"]["conversation_id"].removeprefix("$response.body#/")
    follow = client.post("/v1/customer-service", json={"message": "any news?", pointer: first.json()[pointer]})
    assert follow.status_code == 200 and follow.json()["turn"] == 2 and follow.json()["conversation_id"] == "lnk-1"


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
    ("image not base64", "/v1/credit-risk", {"features": {"loan_amnt": 1}, "image": "%" * 48}, 422, "image"),
    ("image not PNG or JPEG", "/v1/credit-risk",
     {"features": {"loan_amnt": 1}, "image": base64.b64encode(b"GIF89a" + b"\0" * 64).decode()}, 400, "image"),
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


# ------------------------------------------------------------- the schema is the contract (issue 18)
POSTS = {  # endpoint -> (bytes before a string value, bytes after it)
    "/v1/sentiment": (b'{"text": "', b'"}'),
    "/v1/credit-risk": (b'{"features": {"grade": "', b'"}}'),
    "/v1/stock-movement": (b'{"ticker": "A", "bars": [], "texts": ["', b'"]}'),
    "/v1/customer-service": (b'{"message": "', b'"}'),
}
NOT_UTF8 = [("ff fe fa", b"\xff\xfe\xfa", 0), ("after valid UTF-8", "利润 ok ".encode() + b"\xc3\x28", 10),
            ("encoded surrogate", b"ab\xed\xa0\x80", 2), ("overlong slash", b"\xc0\xaf", 0),
            ("truncated at the end", b"\xe5\x88", 0)]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("name,raw,at", NOT_UTF8, ids=[n[0] for n in NOT_UTF8])
def test_a_body_that_is_not_utf8_is_400_naming_the_byte_offset(client, path, name, raw, at):
    before, after = POSTS[path]
    body = before + raw + (after if name != "truncated at the end" else b"")
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()
    offset = len(before) + at
    assert err["error"] == "request body is not valid UTF-8" and err["request_id"] == r.headers["x-request-id"]
    assert err["detail"] == [{"loc": ["body", offset], "type": "utf8_invalid", "msg": err["detail"][0]["msg"]}]
    msg = err["detail"][0]["msg"]
    assert f"at byte offset {offset} " in msg and "encode the body as UTF-8" in msg


def _body_schema(spec: dict, path: str):
    """A validator of the request body of `POST path` as /openapi.json publishes it (OpenAPI 3.1: 2020-12)."""
    import jsonschema_rs

    ref = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator({**ref, "components": spec["components"]})


@pytest.fixture(scope="module")
def spec(client):
    return client.get("/openapi.json").json()


def _fell_short(spec: dict) -> list:
    nulls = {name: None for name in spec["components"]["schemas"]["CreditFeatures"]["properties"]}
    return [("/v1/stock-movement", {"ticker": "A", "bars": []}, "bars"),
            ("/v1/credit-risk", {"features": nulls}, "features"),
            ("/v1/customer-service", {"message": "hi", "image": ""}, "image"),
            ("/v1/sentiment", {"text": "", "texts": []}, "text")]


def test_what_schemathesis_found_rejected_is_now_outside_the_schema(client, spec):
    """The 4 schema-valid requests `schemathesis --checks all` saw rejected: the schema excludes each now, and
    the API still refuses it (422, naming the field)."""
    for path, body, field in _fell_short(spec):
        assert not _body_schema(spec, path).is_valid(body), (path, body)
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert any(field in [str(x) for x in d["loc"]] for d in r.json()["detail"]), r.json()


def _png(size: int, fmt: str = "PNG") -> str:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (30, 120, 200)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def _edges(spec: dict) -> list:
    """Bodies at the edges of what the schema allows, each one the API must answer 200."""
    stock = spec["components"]["schemas"]["StockMovementRequest"]["properties"]
    fewest, most = stock["bars"]["minItems"], stock["bars"]["maxItems"]
    max_texts, max_chars = stock["texts"]["maxItems"], stock["texts"]["items"]["maxLength"]
    bar = [1e-3, 1e-3, 1e-3, 1e-3, 0]
    return [
        ("/v1/stock-movement", {"ticker": "A", "bars": [bar] * fewest, "texts": [], "explain": False}),
        ("/v1/stock-movement", {"ticker": "^GSPC", "bars": BARS[:1] * most, "texts": ["x"] * max_texts,
                                "explain": False}),
        ("/v1/sentiment", {"text": " a ", "texts": None}),
        ("/v1/sentiment", {"text": "\u200b"}),  # zero-width space: not whitespace to str.strip()
        ("/v1/sentiment", {"text": None, "texts": ["x" * max_chars], "explain": False}),
        ("/v1/credit-risk", {"features": {"loan_amnt": 0, "grade": None}}),
        ("/v1/credit-risk", {"features": {"grade": ""}, "text": "。"}),  # an unknown category is a value
        ("/v1/customer-service", {"message": "?", "image": _png(1)}),
        ("/v1/customer-service", {"message": "card", "image": _png(3, "JPEG"), "conversation_id": "a:b.c_d-1"}),
    ]


def test_valid_edge_cases_the_schema_allows_are_accepted(client, spec):
    for path, body in _edges(spec):
        assert _body_schema(spec, path).is_valid(body), (path, body)
        r = client.post(path, json=body)
        assert r.status_code == 200, (path, str(body)[:200], r.text[:300])


SCHEMATHESIS_ALL_EXAMPLES = 15
"""Generated requests per operation and mode for the all-checks run over the whole graph (about 20 s)."""


def test_schemathesis_with_every_check_against_the_served_app(app_url):
    """`schemathesis run --checks all` over real HTTP: every registered check, positive and negative data, for
    each operation. Here the preprocessing of the task deployments runs too, so a schema-valid body that
    the tokenizer, the tabular transform or the series code refused would fail positive_data_acceptance.
    Images are drawn as real PNG/JPEG: that their bytes decode is the decoder's 400, outside JSON Schema."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import CHECKS, load_all_checks
    from schemathesis.core.failures import FailureGroup
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.formats import unregister_string_format

    load_all_checks()
    checks = CHECKS.get_all()
    failures: dict = {}
    statuses: dict = {}

    def explore(operation, mode) -> None:
        @settings(max_examples=SCHEMATHESIS_ALL_EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode))
        def run(case):
            response = case.call(base_url=app_url, timeout=60)
            key = f"{mode.value} {response.status_code}"
            statuses[key] = statuses.get(key, 0) + 1
            try:
                case.validate_response(response, checks=checks)
            except FailureGroup as exc:
                failures.setdefault(f"{operation.label} {mode.value}", (str(exc)[:800], str(case.body)[:300]))

        run()

    schemathesis.openapi.format("byte", st.sampled_from([_png(1), _png(8, "JPEG"), _png(40)]))
    try:
        schema = schemathesis.openapi.from_url(f"{app_url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.method == "post":
                explore(operation, GenerationMode.POSITIVE)
                explore(operation, GenerationMode.NEGATIVE)
    finally:
        unregister_string_format("byte")
    print(f"schemathesis {schemathesis.__version__}, every check, {sum(statuses.values())} requests: {statuses}")
    assert not failures, failures
    assert statuses.get("positive 200", 0) >= 4 * SCHEMATHESIS_ALL_EXAMPLES, statuses


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

    assert replicas("Ingress") == 1
    assert scale("Ingress", 2) == 2
    assert replicas("Ingress") == 2
    assert client.post("/v1/sentiment", json={"text": "scaled"}).status_code == 200
    assert scale("Ingress", 1) == 1
    with pytest.raises(ValueError, match="layout: split"):
        scale("Sentiment", 2)  # one_hop: the tasks run in the ingress
    with pytest.raises(ValueError, match="exactly one replica"):
        scale("OpinionMonitor0", 2)  # a shard owns its tickers' SQLite file
