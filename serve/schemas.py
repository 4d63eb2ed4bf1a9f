"""The wire format: pydantic request and response models of the HTTP API.

The request models state every constraint the API enforces, so that `/openapi.json` says what is accepted:
a request its schema allows is answered 2xx, one it excludes is refused with a 422 naming the field. JSON
Schema cannot say whether an image's bytes decode, so a base64 image that is not a readable PNG/JPEG (or is
over `data.image`'s limits) is a 400 from the decoder, as is a body that is not UTF-8 (serve/api.py).

- Every request model forbids unknown fields, refuses NaN/Infinity (`allow_inf_nan=False`; the JSON parser
  refuses those tokens too, serve/api.py) and is strict: no coercion ("12" is not a number, 0 is not false),
  as the schema's types say.
- A text must hold a character `str.strip()` keeps (`NOT_BLANK`; the tokenizer refuses blank text), a bar's
  prices are > 0 and its volume >= 0, an image is base64 (`BASE64_PATTERN`) of at least `IMAGE_MIN_CHARS`,
  sentiment takes exactly one of `text`/`texts`, credit at least one non-null feature.
- The limits that come from the config (bars, texts, characters) and the credit features of the served
  bundle are put into the models at start-up by `request_models`, so OpenAPI lists them too.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, create_model, model_validator
from pydantic_core import PydanticCustomError


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, str_max_length=20_000_000)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------ pieces
NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""JSON-Schema `pattern` (ECMA-262, unanchored: the text contains one such character) of a text that is not
blank: any character but those `str.isspace()` calls whitespace, which `str.strip()` and so
actors.text.encode_text remove (tests/serve/test_schemas.py checks the set over every code point)."""
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
"""Standard base64 with padding, as `base64.b64decode(..., validate=True)` takes it (no line breaks, no
`data:` prefix), less the surplus '=' after a full quad that the decoder ignores ('9999=' is refused)."""
IMAGE_MIN_CHARS = 44
"""Base64 length of 33 bytes, a PNG signature (8) and its IHDR chunk (25): every PNG starts with them and every
JPEG is longer (a whole 1x1 PNG is 67 bytes, 92 characters). A header alone reaches the decoder, which answers
it 400 (e.g. a decompression bomb is refused from its IHDR)."""
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_text", "text is empty or only whitespace: send at least one visible "
                                                "character, or leave the field out where it is optional")
    return value


def _base64(value: str) -> str:
    if len(value) % 4 or not _BASE64_CHARS.fullmatch(value):
        raise PydanticCustomError("base64", "not base64: use only A-Z a-z 0-9 + / with = padding to a multiple "
                                            "of 4 characters (no data: prefix, no line breaks)")
    return value


def text_type(max_chars: int | None = None) -> Any:
    """A non-blank text of at most `max_chars` characters (code points), as schema and validator."""
    return Annotated[str, Field(min_length=1, max_length=max_chars, json_schema_extra={"pattern": NOT_BLANK}),
                     AfterValidator(_not_blank)]


Text = text_type()
ImageB64 = Annotated[str, Field(min_length=IMAGE_MIN_CHARS, description="Base64 PNG or JPEG (no data: prefix)",
                                json_schema_extra={"format": "byte", "pattern": BASE64_PATTERN}),
                     AfterValidator(_base64)]
DOUBLE_MAX = sys.float_info.max
"""Numbers are IEEE doubles: a JSON number beyond +-DOUBLE_MAX (e.g. 1e400) is refused, and the schema says so."""
Number = Annotated[float, Field(ge=-DOUBLE_MAX, le=DOUBLE_MAX), Strict()]
Price = Annotated[float, Field(gt=0, le=DOUBLE_MAX), Strict()]
Volume = Annotated[float, Field(ge=0, le=DOUBLE_MAX), Strict()]
Bar = Annotated[tuple[Price, Price, Price, Price, Volume], Strict(False),  # a JSON array, validated as a tuple
                Field(description="[open, high, low, close, volume]: prices > 0, volume >= 0")]


# ------------------------------------------------------------------------------------------ credit
def _one_feature_given(schema: dict[str, Any], cls: type) -> None:
    """JSON Schema of 'at least one feature is given and not null': minProperties 1 and an anyOf with one
    branch per feature requiring it with its non-null type."""
    schema["minProperties"] = 1
    branches = []
    for name, prop in schema.get("properties", {}).items():
        kinds = [s for s in prop.get("anyOf", [prop]) if s.get("type") != "null"]
        branches.append({"required": [name], "properties": {name: kinds[0]}})
    if branches:
        schema["anyOf"] = branches


class CreditFeaturesBase(BaseModel):
    """Base of the served `CreditFeatures` (one optional field per feature): at least one must be non-null."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True,
                              json_schema_extra=_one_feature_given)

    @model_validator(mode="after")
    def _one_given(self):
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise PydanticCustomError("no_feature", "every applicant feature is missing: give at least one "
                                                    "feature a value (a number or a category; null means missing)")
        return self


def credit_features_model(features: list[dict], name: str = "CreditFeatures") -> type[BaseModel]:
    """A pydantic model with one optional field per served feature (prefix `num__`/`cat__` dropped)."""
    fields: dict[str, Any] = {}
    for f in features:
        kind = Number if f["kind"] == "numeric" else str
        fields[f["name"]] = (kind | None, Field(None, description=f["description"]))
    return create_model(name, __base__=CreditFeaturesBase, **fields)


class CreditRiskRequest(Request):
    features: dict[str, Number | str | None] = Field(
        min_length=1,
        description="The applicant's tabular fields (see CreditFeatures); at least one must be given")
    text: Text | None = Field(
        None, description="Optional free text, e.g. 'title: ... | employer: ... | description: ...'")
    image: ImageB64 | None = Field(None, description="Optional document image")
    explain: bool = Field(True, description="Return reason codes (costs one backward pass)")


class ReasonCode(Response):
    feature: str
    attribution: float = Field(description="How much this feature raised P(default)")


class CreditRiskResponse(Response):
    dataset: str | None = Field(None, description="The data set whose features and model answered")
    probability_of_default: float
    risk_grade: Literal["A", "B", "C", "D", "E", "F", "G"]
    decision: Literal["approve", "decline"]
    threshold: float
    reason_codes: list[ReasonCode]


# ------------------------------------------------------------------------------------------- stock
class StockMovementRequest(Request):
    ticker: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9.\-^$]+$")
    bars: list[Bar] = Field(min_length=2, description="Recent daily OHLCV bars, oldest first; at least "
                                                      "window_days+1, at most serve.max_bars")
    texts: list[Text] = Field(default_factory=list, description="Optional news or tweet texts, oldest first")
    chart_image: ImageB64 | None = Field(None, description="Optional chart; drawn from the bars when absent")
    explain: bool = Field(True, description="Return modality contributions")


class StockMovementResponse(Response):
    ticker: str
    probability_up: float
    direction: Literal["up", "down"]
    contributions: dict[str, float] = Field(
        description="Per modality: summed token attributions of P(up) (grad x input or integrated gradients)")
    chart_rendered: bool


# --------------------------------------------------------------------------------------- sentiment
class SentimentRequest(Request):
    model_config = ConfigDict(json_schema_extra={"oneOf": [  # exactly one of text / texts, not null
        {"required": ["text"], "properties": {"text": {"type": "string"}, "texts": {"type": "null"}}},
        {"required": ["texts"], "properties": {"texts": {"type": "array"}, "text": {"type": "null"}}},
    ]})

    text: Text | None = Field(None, description="One text (English or Chinese); give this or 'texts'")
    texts: list[Text] | None = Field(None, min_length=1,
                                     description="Several texts, answered in order; give this or 'text'")
    explain: bool = Field(True, description="Return the words that drove each answer")

    @model_validator(mode="after")
    def _one_of_text_texts(self):
        if (self.text is None) == (self.texts is None):
            raise PydanticCustomError("text_or_texts", "give exactly one of 'text' (one text) or 'texts' (a list "
                                                       "of texts); null counts as not given")
        return self


class WordAttribution(Response):
    word: str
    attribution: float


class SentimentResult(Response):
    label: Literal["negative", "neutral", "positive"]
    probabilities: dict[str, float]
    words: list[WordAttribution] = Field(description="Words in text order with their attribution to the label")
    top_words: list[str] = Field(description="Up to 5 words that pushed most towards the label")


class SentimentResponse(Response):
    results: list[SentimentResult]


# -------------------------------------------------------------------------------- customer service
class CustomerServiceRequest(Request):
    message: Text
    image: ImageB64 | None = None
    conversation_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")


class CustomerServiceResponse(Response):
    intent: str
    confidence: float
    answer: str
    answer_source: Literal["intent", "context", "retrieval"] = Field(
        description="intent: the predicted intent's answer; context: a low-confidence follow-up answered for the "
                    "conversation's previous intent; retrieval: the knowledge-base answer closest to the message")
    handoff: bool = Field(description="Hand to a human: low confidence or negative sentiment")
    sentiment: str
    conversation_id: str | None
    turn: int


# ------------------------------------------------------------------------------------------- misc
class ModelInfo(Response):
    name: str
    version: str
    architecture: str
    heads: list[str]
    checkpoint_sha256: str
    trained_at: str
    evaluation: dict[str, Any]
    bf16: bool
    explain_method: str
    torch_threads: int | None = None
    """torch intra-op threads of the backbone replica that answered."""
    endpoints: list[dict[str, Any]] = Field(
        default_factory=list, description="The task endpoints whose request lists a data set's own fields (the "
        "credit endpoint's and each declared task's): path, task, kind, classes, and per data set its fields")


class ErrorDetail(Response):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(Response):
    error: str
    detail: list[ErrorDetail]
    request_id: str


# ------------------------------------------------------------------------------- the served models
@dataclass(frozen=True)
class RequestModels:
    """The request models of one served app: the classes above narrowed to its limits and credit features."""

    credit: type[CreditRiskRequest]
    stock: type[StockMovementRequest]
    sentiment: type[SentimentRequest]
    customer_service: type[CustomerServiceRequest]


def _narrow(base: type[BaseModel], name: str, annotation: Any, **constraints: Any) -> tuple[Any, Any]:
    """(annotation, Field) for create_model: field `name` of `base` with a new type, its description and
    default kept."""
    info = base.model_fields[name]
    kw: dict[str, Any] = {"description": info.description, **constraints}
    if info.default_factory is not None:
        kw["default_factory"] = info.default_factory
    elif not info.is_required():
        kw["default"] = info.default
    return annotation, Field(**kw)


def credit_request_model(credit_features: list[dict] | dict[str, list[dict]], text: Any) -> Any:
    """The credit request: one data set's features (a list), or, when the bundle serves several credit data
    sets ({data set: features}), one model per data set told apart by its `dataset` field (a discriminated
    union: OpenAPI lists each data set's own fields under its name). One data set in a dict: `dataset` is
    optional and may only name it."""
    sets = credit_features if isinstance(credit_features, dict) else {None: credit_features}
    models = []
    for dataset, features in sets.items():
        suffix = f"_{dataset}" if dataset and len(sets) > 1 else ""
        extra: dict[str, Any] = {}
        if dataset is not None:
            tag = Literal[dataset]  # type: ignore[valid-type]
            extra["dataset"] = ((tag, Field(description=f"The data set: {dataset!r}")) if len(sets) > 1 else
                                (tag | None, Field(None, description=f"The data set (only {dataset!r} is served)")))
        models.append(create_model(
            f"CreditRiskRequest{suffix}", __base__=CreditRiskRequest,
            features=(credit_features_model(features, f"CreditFeatures{suffix}"),
                      Field(description="The applicant's fields (CreditFeatures); at least one must be given, not "
                                        "null")),
            text=_narrow(CreditRiskRequest, "text", text | None), **extra))
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="dataset")]  # noqa: UP007


def request_models(credit_features: list[dict] | dict[str, list[dict]], window_days: int, max_bars: int, max_texts: int,
                   max_chars: int) -> RequestModels:
    """The request models with the served limits in them (and so in OpenAPI): bars between window_days+1 and
    max_bars, at most max_texts texts of at most max_chars characters each, exactly the bundle's features."""
    text = text_type(max_chars)
    credit = credit_request_model(credit_features, text)
    stock = create_model(
        "StockMovementRequest", __base__=StockMovementRequest,
        bars=_narrow(StockMovementRequest, "bars", list[Bar], min_length=window_days + 1, max_length=max_bars),
        texts=_narrow(StockMovementRequest, "texts", list[text], max_length=max_texts))
    sentiment = create_model(
        "SentimentRequest", __base__=SentimentRequest,
        text=_narrow(SentimentRequest, "text", text | None),
        texts=_narrow(SentimentRequest, "texts", list[text] | None, min_length=1, max_length=max_texts))
    customer = create_model(
        "CustomerServiceRequest", __base__=CustomerServiceRequest, message=(text, Field()))
    return RequestModels(credit, stock, sentiment, customer)
