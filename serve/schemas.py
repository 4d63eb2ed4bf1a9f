"""The wire format: pydantic request and response models of the HTTP API.

Every request model forbids unknown fields and refuses NaN/Infinity (`allow_inf_nan=False`); the JSON
parser refuses the NaN/Infinity tokens too (serve/api.py). Limits that come from the config (number of bars,
texts, characters) are checked by the API right after validation and answered with the same 422 shape.
The credit request's `features` model is built at start-up from the served bundle (`credit_features_model`),
so OpenAPI lists exactly the served model's features.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=20_000_000)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


Bar = Annotated[list[float], Field(min_length=5, max_length=5, description="[open, high, low, close, volume]")]
ImageB64 = Annotated[str, Field(description="Base64 PNG or JPEG (no data: prefix)")]


# ------------------------------------------------------------------------------------------ credit
def credit_features_model(features: list[dict]) -> type[BaseModel]:
    """A pydantic model with one optional field per served feature (prefix `num__`/`cat__` dropped)."""
    fields: dict[str, Any] = {}
    for f in features:
        kind = float if f["kind"] == "numeric" else str
        fields[f["name"]] = (kind | None, Field(None, description=f["description"]))
    return create_model("CreditFeatures", __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **fields)


class CreditRiskRequest(Request):
    features: dict[str, float | str | None] = Field(
        description="The applicant's tabular fields (see CreditFeatures); at least one must be given")
    text: str | None = Field(
        None, description="Optional free text, e.g. 'title: ... | employer: ... | description: ...'")
    image: ImageB64 | None = Field(None, description="Optional document image")
    explain: bool = Field(True, description="Return reason codes (costs one backward pass)")


class ReasonCode(Response):
    feature: str
    attribution: float = Field(description="How much this feature raised P(default)")


class CreditRiskResponse(Response):
    probability_of_default: float
    risk_grade: Literal["A", "B", "C", "D", "E", "F", "G"]
    decision: Literal["approve", "decline"]
    threshold: float
    reason_codes: list[ReasonCode]


# ------------------------------------------------------------------------------------------- stock
class StockMovementRequest(Request):
    ticker: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9.\-^$]+$")
    bars: list[Bar] = Field(description="Recent daily OHLCV bars, oldest first; at least window_days+1")
    texts: list[str] = Field(default_factory=list, description="Optional news or tweet texts, oldest first")
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
    text: str | None = Field(None, description="One text (English or Chinese)")
    texts: list[str] | None = Field(None, description="Several texts, answered in order")
    explain: bool = Field(True, description="Return the words that drove each answer")


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
    message: str = Field(min_length=1)
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


class ErrorDetail(Response):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(Response):
    error: str
    detail: list[ErrorDetail]
    request_id: str
