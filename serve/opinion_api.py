"""The /v1/opinion endpoints: their strict request/response models and routes (added to the app by
serve/api.py's build_api when the ingress runs the monitor).

- `POST /v1/opinion/items`: 1 to `serve.opinion.max_items` items {ticker, time, text, source?, id?}. **Batch
  rule: all or nothing.** A malformed item (no ticker, a time that is no RFC 3339 date-time with an offset,
  a blank text, an unknown field) refuses the whole batch with a 422 whose `detail[].loc` names it
  (`["body", "items", 3, "time"]`); nothing of that batch is stored. A valid batch is answered item by item:
  label, score, `status` (accepted, duplicate: its id was seen, late: its window is already compacted) and
  the ticker's index at the item's windows after the batch.
- `GET /v1/opinion/{ticker}?window=&from=&to=`: the index per window (`window` one of `serve.opinion
  .windows_s`, an `enum` in OpenAPI), window starts in [from, to], with the alerts of those windows.
- `GET /v1/opinion/alerts?since=&limit=`: recent alerts over every shard, newest first.
- `GET /v1/opinion`: the tickers the monitor holds (the console's picker).
Times are RFC 3339 date-times with `Z` or an offset (`2014-01-02T15:04:05Z`); a number, a date alone or a
date-time without offset is refused (pydantic alone would take "0.5" as a Unix time).
"""


import enum
import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from fastapi import Query as QueryParam
from fastapi import Request as HTTPRequest
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from serve.schemas import Request, Response, text_type

RFC3339 = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")
"""RFC 3339 `date-time` (section 5.6), as a JSON-Schema pattern next to `format: date-time`."""
_RFC3339 = re.compile(RFC3339)
TICKER_PATTERN = r"^[A-Za-z0-9$^][A-Za-z0-9._:$^/-]{0,31}$"
"""A ticker or topic: 1-32 characters, letters, digits and . _ : $ ^ / - (no spaces)."""


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 date-time -> aware datetime; anything else raises a PydanticCustomError (422)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise PydanticCustomError("date_time", "not an RFC 3339 date-time with an offset, e.g. 2014-01-02T15:04:05Z")
    text = value.upper().replace(" ", "T").replace("Z", "+00:00")
    if text[17:19] == "60":  # a leap second: RFC 3339 allows it, datetime does not; count it as :59
        text = text[:17] + "59" + text[19:]
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise PydanticCustomError("date_time", "not a valid date-time: {reason}", {"reason": str(exc)}) from None


DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time", "pattern": RFC3339},
                                examples=["2014-01-02T15:04:05Z"]), AfterValidator(parse_rfc3339)]
Ticker = Annotated[str, Field(pattern=TICKER_PATTERN, description="Ticker or topic", examples=["AAPL"])]


def item_model(max_text_chars: int):
    class OpinionItem(Request):
        """One text about a ticker or topic at a time."""

        ticker: Ticker
        time: DateTime
        text: text_type(max_text_chars)
        source: Annotated[str, Field(min_length=1, max_length=64)] | None = None
        id: Annotated[str, Field(min_length=1, max_length=128,
                                 description="Your id of the item; sending it again changes nothing. Default: a "
                                             "hash of ticker, time, text and source.")] | None = None

    return OpinionItem


def items_model(max_text_chars: int, max_items: int):
    item = item_model(max_text_chars)

    class OpinionItemsRequest(Request):
        items: Annotated[list[item], Field(min_length=1, max_length=max_items)]

    return OpinionItemsRequest


class IndexPoint(Response):
    window_s: int | None = None
    start: str
    n: int
    mean: float | None
    ew: float | None
    pos_share: float | None
    neg_share: float | None


class ItemResult(Response):
    id: str
    ticker: str
    time: str
    label: Literal["negative", "neutral", "positive"]
    score: float
    probabilities: dict[str, float]
    status: Literal["accepted", "duplicate", "late"]
    index: list[IndexPoint]


class OpinionItemsResponse(Response):
    results: list[ItemResult]


class Alert(Response):
    ticker: str
    window_s: int
    start: str
    mean: float
    z: float
    mu: float
    sd: float
    n: int
    raised_at: str


class OpinionSeries(Response):
    ticker: str
    window_s: int
    points: list[IndexPoint]
    alerts: list[Alert]


class OpinionAlerts(Response):
    alerts: list[Alert]


class OpinionTickers(Response):
    tickers: list[str]


def add_opinion_routes(app, front, options: dict, rid_of) -> None:
    """Register the /v1/opinion routes on `app` (build_api's FastAPI app, with its error handlers).
    `front` is serve.opinion.OpinionFront; options["opinion"] is serve.opinion as a dict."""
    o = options["opinion"]
    request_model = items_model(options["max_text_chars"], o["max_items"])
    windows = sorted(o["windows_s"])
    Window = enum.IntEnum("Window", {f"s{w}": w for w in windows})  # noqa: N806 (a type)
    default_window = Window(86400 if 86400 in windows else windows[0])

    def ts(value: str | None, name: str) -> float | None:
        if value is None:
            return None
        try:
            return parse_rfc3339(value).timestamp()
        except PydanticCustomError as exc:
            raise _Invalid(["query", name], str(exc)) from None

    @app.post("/v1/opinion/items", response_model=OpinionItemsResponse, tags=["opinion"])
    async def opinion_items(body: request_model, request: HTTPRequest):  # type: ignore[valid-type]
        """Score up to serve.opinion.max_items items and add them to their tickers' index (all or nothing:
        one malformed item refuses the batch, naming it)."""
        t0 = time.perf_counter()
        items = [it.model_dump() for it in body.items]  # time: an aware datetime (parse_rfc3339)
        reply = await front.ingest(items)
        if "error" in reply:
            e = reply["error"]
            return JSONResponse({"error": e["message"], "detail": [{"loc": e["loc"], "msg": e["message"],
                                 "type": "invalid_input"}], "request_id": rid_of(request)}, 422)
        ms = (time.perf_counter() - t0) * 1000
        return JSONResponse({"results": reply["results"]},
                            headers={"server-timing": f"opinion;dur={ms:.1f}",
                                     "x-batch-size": str(reply["batch_size"])})

    @app.get("/v1/opinion", response_model=OpinionTickers, tags=["opinion"])
    async def opinion_tickers():
        """The tickers the monitor holds state for."""
        return await front.tickers()

    @app.get("/v1/opinion/alerts", response_model=OpinionAlerts, tags=["opinion"])
    async def opinion_alerts(since: Annotated[str, QueryParam(
                                 description="Alerts raised at or after this RFC 3339 date-time",
                                 pattern=RFC3339, json_schema_extra={"format": "date-time"})] = None,
                             limit: Annotated[int, QueryParam(ge=1, le=1000)] = 100):
        """Recent alerts over every ticker, newest first."""
        return await front.alerts(ts(since, "since"), limit)

    @app.get("/v1/opinion/{ticker}", response_model=OpinionSeries, tags=["opinion"])
    async def opinion_series(ticker: Annotated[str, PathParam(pattern=TICKER_PATTERN)],
                             window: Annotated[Window, QueryParam(description="Window size (s): one of the kept "
                                                                  "windows")] = default_window,
                             t_from: Annotated[str, QueryParam(
                                 alias="from", description="First window start (RFC 3339 date-time)",
                                 pattern=RFC3339, json_schema_extra={"format": "date-time"})] = None,
                             t_to: Annotated[str, QueryParam(
                                 alias="to", description="Last window start (RFC 3339 date-time)",
                                 pattern=RFC3339, json_schema_extra={"format": "date-time"})] = None):
        """The ticker's index per window, oldest first, with the alerts of those windows."""
        lo, hi = ts(t_from, "from"), ts(t_to, "to")
        if lo is not None and hi is not None and lo > hi:  # an empty range, as the schema allows: no windows
            return {"ticker": ticker, "window_s": int(window), "points": [], "alerts": []}
        return await front.series(ticker, int(window), lo, hi)

    @app.exception_handler(_Invalid)
    async def on_invalid(request, exc: _Invalid):
        return JSONResponse({"error": "invalid request", "detail": [{"loc": exc.loc, "msg": exc.msg,
                             "type": "date_time" if "date-time" in exc.msg else "value_error"}],
                             "request_id": rid_of(request)}, 422)


class _Invalid(Exception):
    def __init__(self, loc: list, msg: str):
        super().__init__(msg)
        self.loc, self.msg = loc, msg


__all__: list[Any] = ["add_opinion_routes", "parse_rfc3339"]
