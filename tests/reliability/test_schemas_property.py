"""Property-based tests of the wire format (serve/schemas.py) and of the API's validation layer (serve/api.py),
in process: no Ray, no model. A small in-process backend stands in for the task deployments so that the
FastAPI app (strict JSON parsing, limits, error shape, gate) runs exactly as in the ingress.

- any JSON value, or any bytes, given to a request model raises nothing but pydantic's ValidationError;
- any JSON value or any bytes POSTed to any endpoint is answered 2xx or 4xx with the error shape, never 5xx;
- any body that is not UTF-8 is answered 400 naming the byte offset of its first bad byte;
- every valid generated request survives a JSON round trip unchanged;
- schemathesis over the app's /openapi.json with every check (`--checks all`), positive and negative data:
  what the schema allows is accepted, what it excludes is refused (the validation layer; tests/serve/test_app.py
  runs the same against the whole Serve graph, where the model's preprocessing runs too).
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
price = st.floats(min_value=1e-6, max_value=1e12)
bars = st.lists(st.tuples(price, price, price, price, st.floats(min_value=0, max_value=1e12)), min_size=2,
                max_size=12)
ticker = st.from_regex(r"\A[A-Za-z0-9.\-^$]{1,16}\Z")
cid = st.none() | st.from_regex(r"\A[A-Za-z0-9_.:\-]{1,128}\Z")
text = st.text(min_size=1).filter(str.strip)
"""A text the API takes: at least one character `str.strip()` keeps."""
credit_features = schemas.credit_features_model(FEATURES)
valid_requests = st.one_of(
    st.builds(schemas.SentimentRequest, text=text, explain=st.booleans()),
    st.builds(schemas.SentimentRequest, texts=st.lists(text, min_size=1, max_size=4), explain=st.booleans()),
    st.builds(schemas.StockMovementRequest, ticker=ticker, bars=bars, texts=st.lists(text, max_size=3),
              explain=st.booleans()),
    st.builds(schemas.CustomerServiceRequest, message=text, conversation_id=cid),
    st.builds(schemas.CreditRiskRequest,
              features=st.fixed_dictionaries({"loan_amnt": finite}, optional={"int_rate": finite | st.none(),
                                                                            "grade": st.text(max_size=3)}),
              text=st.none() | text, explain=st.booleans()),
    st.builds(credit_features, loan_amnt=finite, grade=st.none() | st.text(max_size=5)),
    st.builds(credit_features, loan_amnt=st.none() | finite, grade=st.text(max_size=5)),
)


@FAST
@given(request=valid_requests)
def test_valid_requests_round_trip_through_json(request):
    model = type(request)
    again = model.model_validate_json(request.model_dump_json())
    assert again == request
    assert model.model_validate(json.loads(request.model_dump_json())) == request


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10 ** 400])
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

    async def ready(self):
        return {"Backbone": True}

    async def models(self):
        return {"name": "echo", "version": "1", "architecture": "none", "heads": [], "checkpoint_sha256": "0" * 64,
                "trained_at": "2026-12-01", "evaluation": {}, "bf16": False, "explain_method": "grad_x_input"}

    async def stats(self):
        return {"backbone": {}, "conversations": 0}


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


def _not_utf8(raw: bytes) -> int | None:
    """Byte offset of the first byte of `raw` that is not UTF-8, or None when it all is."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


@FAST
@given(path=st.sampled_from(PATHS), prefix=st.text(max_size=20).map(str.encode), bad=st.binary(min_size=1, max_size=4),
       suffix=st.binary(max_size=20))
def test_a_body_that_is_not_utf8_is_400_naming_the_first_bad_byte(api, path, prefix, bad, suffix):
    body = b'{"text": "' + prefix + bad + suffix + b'"}'
    offset = _not_utf8(body)
    r = api.post(path, content=body, headers={"content-type": "application/json"})
    if offset is None:  # the drawn bytes happened to be UTF-8
        assert r.status_code != 400 or r.json()["detail"][0]["type"] != "utf8_invalid"
        return
    assert r.status_code == 400, r.text[:300]
    err = r.json()
    assert err["detail"][0]["loc"] == ["body", offset] and err["detail"][0]["type"] == "utf8_invalid"
    assert f"byte offset {offset}" in err["detail"][0]["msg"] and "UTF-8" in err["error"]


SCHEMATHESIS_EXAMPLES = 25
"""Generated requests per operation and mode (positive, negative) for the in-process run (about 10 s)."""


def _images() -> list[str]:
    import base64
    import io

    from PIL import Image

    out = []
    for size, fmt in ((1, "PNG"), (8, "JPEG"), (40, "PNG")):
        buf = io.BytesIO()
        Image.new("RGB", (size, size), (200, 30, 30)).save(buf, format=fmt)
        out.append(base64.b64encode(buf.getvalue()).decode())
    return out


def _explore_every_check(operation, mode, checks: list, failures: dict, statuses: dict) -> None:
    """SCHEMATHESIS_EXAMPLES cases of `operation` in `mode`, each checked by every check; the first failure per
    operation and mode goes into `failures` (so one run reports them all), status counts into `statuses`."""
    from hypothesis import Phase
    from schemathesis.core.failures import FailureGroup

    @settings(max_examples=SCHEMATHESIS_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode))
    def run(case):
        response = case.call()
        key = f"{mode.value} {response.status_code}"
        statuses[key] = statuses.get(key, 0) + 1
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as exc:  # one entry per failed check
            failures.setdefault(f"{operation.label} {mode.value}", (str(exc)[:800], case.body))

    run()


def test_schemathesis_with_every_check_in_process(api):
    """`schemathesis run --checks all` in process: every registered check, positive and negative data, for each
    operation of the app's /openapi.json (EchoBackend behind it). Images are drawn as real PNG/JPEG (the
    schema's `format: byte` says base64; whether the bytes decode is the decoder's 400, outside JSON Schema)."""
    import schemathesis
    from schemathesis.checks import CHECKS, load_all_checks
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.formats import unregister_string_format

    load_all_checks()
    checks = CHECKS.get_all()
    schemathesis.openapi.format("byte", st.sampled_from(_images()))
    failures: dict = {}
    statuses: dict = {}
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
        for result in schema.get_all_operations():
            operation = result.ok()
            modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.method == "post" else [])
            for mode in modes:
                _explore_every_check(operation, mode, checks, failures, statuses)
    finally:
        unregister_string_format("byte")  # back to schemathesis' own base64 strategy for other tests
    print(f"schemathesis {schemathesis.__version__}, every check, {sum(statuses.values())} requests: {statuses}")
    assert not failures, failures
    assert statuses.get("positive 200", 0) >= 4 * SCHEMATHESIS_EXAMPLES and any(
        s.startswith("negative 4") for s in statuses), statuses


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
