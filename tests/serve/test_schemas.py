"""The request models (serve/schemas.py) and their JSON Schema say the same thing: a body the schema allows
validates, a body it excludes does not. In process, no Ray: hypothesis draws bodies near every constraint
(small limits, blank texts, bad bars, null features, short or broken base64) and both sides must agree."""

from __future__ import annotations

import base64
import binascii
import io
import re

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from serve import schemas

FEATURES = [
    {"name": "loan_amnt", "column": "num__loan_amnt", "kind": "numeric", "description": "numeric"},
    {"name": "int_rate", "column": "num__int_rate", "kind": "numeric", "description": "numeric"},
    {"name": "grade", "column": "cat__grade", "kind": "categorical", "description": "categorical"},
]
WINDOW, MAX_BARS, MAX_TEXTS, MAX_CHARS = 2, 4, 2, 6
"""Small limits, so that generated bodies fall on both sides of each."""
MODELS = schemas.request_models(FEATURES, WINDOW, MAX_BARS, MAX_TEXTS, MAX_CHARS)
AGREE = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _png(size: int = 1, fmt: str = "PNG") -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (10, 200, 30)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def _agree(model, body) -> None:
    """The model's JSON Schema (2020-12, as OpenAPI 3.1 has it) and its validation give the same verdict."""
    allowed = jsonschema_rs.Draft202012Validator(model.model_json_schema()).is_valid(body)
    try:
        model.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert allowed == accepted, (model.__name__, body, "schema allows" if allowed else "schema excludes")


# ------------------------------------------------------------------------------------------- pieces
def test_not_blank_pattern_is_what_strip_keeps_over_every_code_point():
    keeps = re.compile(schemas.NOT_BLANK)
    for cp in range(0x110000):
        ch = chr(cp)
        assert (keeps.search(ch) is not None) == bool(ch.strip()), hex(cp)


base64ish = st.text(alphabet="AB+/=9z%\n -", max_size=14)


@settings(max_examples=400, deadline=None, database=None)
@given(value=base64ish | st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()))
def test_base64_pattern_is_what_b64decode_validates_without_surplus_padding(value):
    try:
        base64.b64decode(value, validate=True)
        decodes = True
    except (binascii.Error, ValueError):
        decodes = False
    core = value.rstrip("=")
    padded_exactly = value == core + "=" * (-len(core) % 4)  # b64decode ignores '=' beyond a full quad ('9999=')
    decodes = decodes and padded_exactly
    assert (re.fullmatch(schemas.BASE64_PATTERN, value) is not None) == decodes, value
    try:
        schemas._base64(value)
        assert decodes
    except Exception:
        assert not decodes


def test_image_min_chars_is_below_every_image():
    png_start = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\x0dIHDR" + b"\0" * 17  # signature + IHDR: 33 bytes
    assert len(base64.b64encode(png_start)) == schemas.IMAGE_MIN_CHARS
    assert min(len(_png(1)), len(_png(1, "JPEG"))) > schemas.IMAGE_MIN_CHARS


# -------------------------------------------------------------------------- schema == validation
def mostly(good, bad):
    """`good` three times in four, else `bad`: a body then breaks one or two constraints, not all."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda ok: good if ok else bad)


good_texts = st.sampled_from(["a", " a ", "\u200b", "\x85x", "abcdef", "利润"])
texts = mostly(good_texts, st.sampled_from(["", " ", "\u3000", "\x1c", "\ufeff", "abcdefg"]) | st.text(max_size=8))
junk = st.sampled_from([None, 0, 1.5, True, "x", [], {}, ["a"]])
number = mostly(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**9, 10**9),
                st.sampled_from([10 ** 400, -10 ** 400, True, "1", None]))
images = mostly(st.sampled_from([_png(1), _png(2, "JPEG")]),
                st.sampled_from(["", "%" * 48, "A" * 40, "A" * 45, _png(1) + "\n", "data:image/png;base64,AAAA"]))
good_bar = st.tuples(*[st.floats(min_value=1e-300, max_value=1e300)] * 4,
                     st.sampled_from([0, 1, 2.5, 1e12]) | st.integers(0, 10**9)).map(list)
bad_value = st.sampled_from([0, -1, -0.0, 10 ** 400, "1", True, None])
bar = mostly(good_bar, st.tuples(good_bar, st.integers(0, 3), bad_value).map(lambda t: t[0][:t[1]] + [t[2]]
                                                                            + t[0][t[1] + 1:])
             | st.tuples(good_bar, st.sampled_from([-1, "v", None])).map(lambda t: t[0][:4] + [t[1]])
             | st.lists(number, min_size=4, max_size=6) | junk)
bars = mostly(st.lists(mostly(good_bar, bar), min_size=WINDOW + 1, max_size=MAX_BARS),
              st.lists(good_bar, max_size=MAX_BARS + 2) | st.lists(bar, max_size=MAX_BARS) | junk)
text_lists = mostly(st.lists(texts, min_size=1, max_size=MAX_TEXTS), st.lists(texts, max_size=MAX_TEXTS + 2))
explain = mostly(st.booleans(), junk)

sentiment_bodies = st.one_of(
    st.fixed_dictionaries({"text": texts}, optional={"texts": junk, "explain": explain}),
    st.fixed_dictionaries({"texts": mostly(text_lists, junk)}, optional={"text": junk, "explain": explain}),
    st.fixed_dictionaries({}, optional={"text": texts | junk, "texts": text_lists | junk, "explain": explain,
                                        "extra": junk}))
stock_bodies = st.fixed_dictionaries(
    {"ticker": mostly(st.sampled_from(["AAPL", "BRK.A", "^GSPC"]), st.sampled_from(["", "a b", "X" * 17, 5])),
     "bars": bars},
    optional={"texts": mostly(st.lists(texts, max_size=MAX_TEXTS), text_lists | junk), "chart_image": images | junk,
              "explain": explain})
features = mostly(
    st.fixed_dictionaries({}, optional={"loan_amnt": number | st.none(), "int_rate": number | st.none(),
                                        "grade": texts | st.none()}),
    st.fixed_dictionaries({}, optional={"grade": junk, "shoe_size": number}) | junk)
credit_bodies = st.fixed_dictionaries({"features": features}, optional={
    "text": mostly(texts, junk), "image": mostly(images, junk), "explain": explain})
customer_bodies = st.fixed_dictionaries({"message": mostly(texts, junk)}, optional={
    "image": mostly(images, junk),
    "conversation_id": mostly(st.sampled_from(["c-1", "a:b.c_d-1"]), st.sampled_from(["", "a b", "x" * 129, 5]))})


@AGREE
@given(body=sentiment_bodies)
def test_sentiment_schema_and_validation_agree(body):
    _agree(MODELS.sentiment, body)


@AGREE
@given(body=stock_bodies)
def test_stock_schema_and_validation_agree(body):
    _agree(MODELS.stock, body)


@AGREE
@given(body=credit_bodies)
def test_credit_schema_and_validation_agree(body):
    _agree(MODELS.credit, body)


@AGREE
@given(body=customer_bodies)
def test_customer_service_schema_and_validation_agree(body):
    _agree(MODELS.customer_service, body)


# -------------------------------------------------------------------- the four cases of issue 18
FELL_SHORT = [
    ("bars: []", MODELS.stock, {"ticker": "A", "bars": []}, ("bars",)),
    ("all features null", MODELS.credit, {"features": {f["name"]: None for f in FEATURES}}, ("features",)),
    ("image: ''", MODELS.customer_service, {"message": "hi", "image": ""}, ("image",)),
    ("text '' with texts []", MODELS.sentiment, {"text": "", "texts": []}, ("text",)),
]


@pytest.mark.parametrize("name,model,body,loc", FELL_SHORT, ids=[c[0] for c in FELL_SHORT])
def test_what_the_api_refused_the_schema_now_excludes(name, model, body, loc):
    assert not jsonschema_rs.Draft202012Validator(model.model_json_schema()).is_valid(body)
    with pytest.raises(ValidationError) as err:
        model.model_validate(body)
    assert any(e["loc"][:len(loc)] == loc for e in err.value.errors()), err.value.errors()


def test_limits_and_features_are_in_the_schema():
    stock = MODELS.stock.model_json_schema()["properties"]
    assert (stock["bars"]["minItems"], stock["bars"]["maxItems"]) == (WINDOW + 1, MAX_BARS)
    assert stock["texts"]["maxItems"] == MAX_TEXTS and stock["texts"]["items"]["maxLength"] == MAX_CHARS
    credit = MODELS.credit.model_json_schema()
    feats = credit["$defs"]["CreditFeatures"]
    assert set(feats["properties"]) == {f["name"] for f in FEATURES} and feats["additionalProperties"] is False
    assert feats["minProperties"] == 1 and len(feats["anyOf"]) == len(FEATURES)
    assert "oneOf" in MODELS.sentiment.model_json_schema()
