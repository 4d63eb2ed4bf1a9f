"""Property-based tests of the wire format (serve/schemas.py) and of the API's validation layer (serve/api.py),
in process: no Ray, no model. A small in-process backend stands in for the task deployments so that the
FastAPI app (strict JSON parsing, limits, error shape, gate) runs exactly as in the ingress.

- any JSON value, or any bytes, given to a request model raises nothing but pydantic's ValidationError;
- any JSON value or any bytes POSTed to any endpoint is answered 2xx or 4xx with the error shape, never 5xx;
- every valid generated request survives a JSON round trip unchanged.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from serve import schemas

pytestmark = pytest.mark.timeout(300)

FEATURES = [
    {"name": "loan_amnt", "column": "num__loan_amnt", "kind": "numeric", "description": "numeric"},
    {"name": "int_rate", "column": "num__int_rate", "kind": "numeric", "description": "numeric"},
    {"name": "grade", "column": "cat__grade", "kind": "categorical", "description": "categorical"},
    {"name": "purpose", "column": "cat__purpose", "kind": "categorical", "description": "categorical"},
]
REQUESTS = [schemas.CreditRiskRequest, schemas.StockMovementRequest, schemas.SentimentRequest,
            schemas.CustomerServiceRequest]
PATHS = ["/v1/credit-risk", "/v1/stock-movement", "/v1/sentiment", "/v1/customer-service"]
FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
# objects that look like requests: known keys with arbitrary values, plus strays
request_like = st.dictionaries(
    st.sampled_from(["features", "text", "texts", "image", "explain", "ticker", "bars", "chart_image", "message",
                     "conversation_id", "loan_amnt", "grade", "x"]),
    json_values, max_size=6)


# ------------------------------------------------------------------------------------ the models alone
@FAST
@given(model=st.sampled_from(REQUESTS), value=json_values | request_like)
def test_any_json_value_raises_only_validation_errors(model, value):
    try:
        model.model_validate(value)
    except ValidationError:
        pass


@FAST
@given(model=st.sampled_from(REQUESTS), raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_raise_only_validation_errors(model, raw):
    try:
        model.model_validate_json(raw)
    except ValidationError:
        pass


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
bars = st.lists(st.lists(finite, min_size=5, max_size=5), min_size=1, max_size=12)
ticker = st.from_regex(r"\A[A-Za-z0-9.\-^$]{1,16}\Z")
cid = st.none() | st.from_regex(r"\A[A-Za-z0-9_.:\-]{1,128}\Z")
credit_features = schemas.credit_features_model(FEATURES)
valid_requests = st.one_of(
    st.builds(schemas.SentimentRequest, text=st.none() | st.text(), texts=st.none() | st.lists(st.text(), max_size=4),
              explain=st.booleans()),
    st.builds(schemas.StockMovementRequest, ticker=ticker, bars=bars, texts=st.lists(st.text(), max_size=3),
              explain=st.booleans()),
    st.builds(schemas.CustomerServiceRequest, message=st.text(min_size=1), conversation_id=cid),
    st.builds(schemas.CreditRiskRequest,
              features=st.fixed_dictionaries({}, optional={"loan_amnt": finite, "int_rate": finite | st.none(),
                                                           "grade": st.text(max_size=3)}),
              text=st.none() | st.text(), explain=st.booleans()),
    st.builds(credit_features, loan_amnt=st.none() | finite, grade=st.none() | st.text(max_size=5)),
)


@FAST
@given(request=valid_requests)
def test_valid_requests_round_trip_through_json(request):
    model = type(request)
    again = model.model_validate_json(request.model_dump_json())
    assert again == request
    assert model.model_validate(json.loads(request.model_dump_json())) == request


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(ValidationError):
        schemas.StockMovementRequest.model_validate({"ticker": "A", "bars": [[value, 1, 1, 1, 1]] * 6})
    with pytest.raises(ValidationError):
        credit_features.model_validate({"loan_amnt": value})


# ------------------------------------------------------------------------------------ the HTTP layer
class EchoBackend:
    """The task side of the ingress, in process: a well-formed reply per task (what the deployments return)."""

    async def credit(self, payload):
        return {"result": {"probability_of_default": 0.1, "risk_grade": "C", "decision": "approve",
                           "threshold": 0.5, "reason_codes": []}, "timing": {"task": 1.0}}

    async def stock(self, payload):
        return {"result": {"ticker": payload["ticker"], "probability_up": 0.5, "direction": "up",
                           "contributions": {}, "chart_rendered": True}, "timing": {"task": 1.0}}

    async def sentiment(self, payload):
        one = {"label": "neutral", "probabilities": {"negative": 0.2, "neutral": 0.6, "positive": 0.2},
               "words": [], "top_words": []}
        return {"result": {"results": [one] * len(payload["texts"])}, "timing": {"task": 1.0}}

    async def customer_service(self, payload):
        return {"result": {"intent": "card_arrival", "confidence": 0.9, "answer": "a", "answer_source": "intent",
                           "handoff": False, "sentiment": "neutral", "conversation_id": payload["conversation_id"],
                           "turn": 1}, "timing": {"task": 1.0}}


@pytest.fixture(scope="module")
def api():
    from fastapi.testclient import TestClient

    from serve.api import build_api

    options = {"max_text_chars": 5000, "max_texts": 64, "max_bars": 512, "max_body_bytes": 2_000_000}
    with TestClient(build_api(EchoBackend(), options, FEATURES, window_days=5, api_keys=[]),
                    raise_server_exceptions=False) as client:
        yield client


def _check_answer(r) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error", "detail", "request_id"} and isinstance(body["detail"], list)


@FAST
@given(path=st.sampled_from(PATHS), value=json_values | request_like)
def test_any_json_body_is_answered_without_a_server_error(api, path, value):
    _check_answer(api.post(path, json=value))


@FAST
@given(path=st.sampled_from(PATHS), raw=st.binary(max_size=300))
def test_any_bytes_body_is_answered_without_a_server_error(api, path, raw):
    _check_answer(api.post(path, content=raw, headers={"content-type": "application/json"}))


def test_an_endpoint_whose_head_the_model_lacks_answers_503_naming_the_finetune():
    from fastapi.testclient import TestClient

    from serve.api import build_api

    options = {"max_text_chars": 5000, "max_texts": 64, "max_bars": 512, "max_body_bytes": 2_000_000}
    app = build_api(EchoBackend(), options, FEATURES, window_days=5, api_keys=[], heads={"sentiment"})
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/v1/sentiment", json={"text": "Profit rose."}).status_code == 200
        r = client.post("/v1/customer-service", json={"message": "Where is my card?"})
        assert r.status_code == 503
        assert "no intent head" in r.json()["error"] and "finmm finetune --tasks customer_service" in r.json()["error"]
        assert "heads present: sentiment" in r.json()["error"]
        r = client.post("/v1/credit-risk", json={"features": {FEATURES[0]["name"]: 1.0}})
        assert r.status_code == 503 and "credit_risk head" in r.json()["error"]
