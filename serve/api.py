"""The HTTP API: a FastAPI app built inside the ingress replica (so the credit schema can come from the served
bundle), its gate middleware (request id, API keys, body limit, metrics, access log) and its error shape.

Every error is `{"error": str, "detail": [{"loc", "msg", "type"}], "request_id": str}`; input errors are 4xx:
422 for a request its OpenAPI schema excludes (the request models, serve/schemas.py, state every constraint),
400 for bytes that cannot be read (a body that is not UTF-8, an image that does not decode).
Predictions are retried on another replica when the one serving them dies (`retry_idempotent`), except a
customer-service turn with a conversation_id, which updates the conversation (its backbone call still is).
"""

import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve import schemas
from serve.conversation_store import key_scope
from serve.deployments import retry_idempotent
from serve.opinion_api import add_opinion_routes

logger = logging.getLogger("finmm.serve")
OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")
"""Paths that need no API key (probes and API docs); the web console at exactly "/" is open too (its key
field sends the key with each API call)."""
CONSOLE = Path(__file__).with_name("console") / "index.html"
"""The web console: one static page (HTML, CSS and JS inline; no build step, nothing fetched from elsewhere)."""


# ------------------------------------------------------------------------------------ strict JSON
class BodyNotUTF8(HTTPException):
    """A JSON body whose bytes are not UTF-8 (RFC 8259 requires it): answered 400 naming the first bad byte.
    An HTTPException, so FastAPI's body reader passes it on as is (it turns other errors into a bare 400)."""

    def __init__(self, exc: UnicodeDecodeError):
        super().__init__(400, "request body is not valid UTF-8")
        self.offset: int = exc.start
        """Byte offset of the first byte that is not UTF-8 (0-based)."""
        self.byte: int = exc.object[exc.start]
        self.reason: str = exc.reason

    def detail_list(self) -> list[dict]:
        return [{"loc": ["body", self.offset], "type": "utf8_invalid",
                 "msg": f"byte 0x{self.byte:02x} at byte offset {self.offset} is not UTF-8 ({self.reason}); JSON "
                        f"must be UTF-8 (RFC 8259): encode the body as UTF-8"}]


class StrictJSONRequest(Request):
    """json() refuses a body that is not UTF-8 (`BodyNotUTF8`, 400) and the NaN, Infinity and -Infinity
    tokens, which Python's json (and so FastAPI) accepts by default.
    Every endpoint's body is parsed here (`StrictJSONRoute`), so the checks hold for all of them."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                text = (await self.body()).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BodyNotUTF8(exc) from None

            def refuse(name: str):
                raise json.JSONDecodeError(f"{name} is not valid JSON (use a finite number or null)", text,
                                           max(text.find(name), 0))

            self._json = json.loads(text, parse_constant=refuse)
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable]:
        original = super().get_route_handler()

        async def handler(request: Request):
            return await original(StrictJSONRequest(request.scope, request.receive))

        return handler


# ------------------------------------------------------------------------------------------ gate
class GateState:
    """Shared between the gate and its ingress: requests in flight, and whether the replica is draining."""

    def __init__(self):
        self.in_flight = 0
        """Requests admitted and not yet answered."""
        self.draining = False
        """Set by Ingress.drain (on SIGTERM of `finmm serve`): new requests get 503, admitted ones finish."""


def _error_body(error: str, detail: list[dict], request_id: str) -> bytes:
    return json.dumps({"error": error, "detail": detail, "request_id": request_id}).encode()


class Gate:
    """Pure ASGI middleware, outermost: request id, API-key check, body limit (before any parsing),
    per-endpoint metrics, the access log line (no bodies, no personal fields) and Server-Timing total."""

    def __init__(self, app, max_body_bytes: int, api_keys: list[str], metrics=None, access_log: bool = True,
                 state: GateState | None = None):
        self.app, self.max_body_bytes, self.api_keys, self.metrics = app, max_body_bytes, api_keys, metrics
        self.access_log = access_log
        self.state = state or GateState()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = headers.get("x-request-id")
        add_rid = rid is None  # behind Serve's proxy the id is always set, and the proxy echoes it
        if add_rid:
            rid = uuid.uuid4().hex
            scope["headers"] = [*scope.get("headers", []), (b"x-request-id", rid.encode())]
        path = scope.get("path", "")
        status_box = {"status": 500}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
                hdrs = list(message.get("headers", []))
                total = (time.perf_counter() - t0) * 1000
                timing = [v for k, v in hdrs if k.lower() == b"server-timing"]
                hdrs = [(k, v) for k, v in hdrs if k.lower() != b"server-timing"]
                value = b", ".join([*timing, f"total;dur={total:.1f}".encode()])
                hdrs.append((b"server-timing", value))
                if add_rid:
                    hdrs.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": hdrs}
            await send(message)

        async def reply(status: int, error: str, detail: list[dict], extra: list | None = None):
            await send_wrapped({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json"), *(extra or [])]})
            await send_wrapped({"type": "http.response.body", "body": _error_body(error, detail, rid)})

        if self.state.draining and path not in ("/healthz",):
            return await reply(503, "shutting down", [{"loc": [], "msg": "the server is draining before it stops; "
                                                      "retry on another replica", "type": "draining"}],
                               [(b"connection", b"close"), (b"retry-after", b"1")])
        self.state.in_flight += 1
        try:
            if self.api_keys and path != "/" and not path.startswith(OPEN_PATHS) and not self._authorised(headers):
                return await reply(401, "missing or invalid API key",
                                   [{"loc": ["header", "authorization"], "msg": "send 'Authorization: Bearer <key>' "
                                     "or 'X-API-Key: <key>'", "type": "unauthorized"}],
                                   [(b"www-authenticate", b"Bearer")])
            length = headers.get("content-length")
            too_big = [{"loc": ["body"], "msg": f"request body over {self.max_body_bytes} bytes",
                        "type": "body_too_large"}]
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                return await reply(413, "request body too large", too_big)
            # Read the body up to the limit before the app parses anything, then replay it.
            chunks, size, more = [], 0, scope.get("method") in ("POST", "PUT", "PATCH")
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body = message.get("body", b"")
                size += len(body)
                if size > self.max_body_bytes:
                    return await reply(413, "request body too large", too_big)
                chunks.append(body)
                more = message.get("more_body", False)
            buffered = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            sent = False

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return buffered
                return await receive()

            await self.app(scope, replay if chunks else receive, send_wrapped)
        finally:
            self.state.in_flight -= 1
            ms = (time.perf_counter() - t0) * 1000
            endpoint = path if path.startswith("/v1/") or path in OPEN_PATHS else "other"
            if self.metrics is not None:
                self.metrics.record(endpoint, status_box["status"], ms)
            if self.access_log:
                    logger.info("request_id=%s method=%s endpoint=%s status=%s ms=%.1f", rid, scope.get("method"),
                            endpoint, status_box["status"], ms)

    def _authorised(self, headers: dict[str, str]) -> bool:
        given = presented_key(headers)
        if not given:
            return False
        ok = False
        for key in self.api_keys:  # compare with every key, constant time each
            ok |= hmac.compare_digest(given.encode(), key.encode())
        return ok


def presented_key(headers) -> str:
    """The API key a request presents: `Authorization: Bearer <key>`, else `X-API-Key`, else ""."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")


class Metrics:
    """Counters and latency histograms per endpoint, exported with Ray's metrics (Prometheus format on
    each node's metrics export port, next to Ray Serve's own serve_* metrics)."""

    def __init__(self):
        from ray.serve.metrics import Counter, Histogram

        self.requests = Counter("finmm_requests_total", description="HTTP requests by endpoint and status",
                                tag_keys=("endpoint", "status"))
        self.latency = Histogram("finmm_request_latency_ms", description="End-to-end latency at the ingress (ms)",
                                 boundaries=[5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
                                 tag_keys=("endpoint",))

    def record(self, endpoint: str, status: int, ms: float) -> None:
        self.requests.inc(tags={"endpoint": endpoint, "status": str(status)})
        self.latency.observe(ms, tags={"endpoint": endpoint})


# ----------------------------------------------------------------------------------- the app
ENDPOINT_HEADS = {
    "credit-risk": ("credit_risk", "credit_risk"),
    "stock-movement": ("stock_movement", "stock_movement"),
    "sentiment": ("sentiment", "sentiment"),
    "customer-service": ("intent", "customer_service"),
}
"""Endpoint -> (the model head it needs, the `finmm finetune --task` that trains it). The customer-service
endpoint also needs the sentiment head (its hand-off rule reads the message's sentiment)."""


CUSTOMER_SERVICE_OPERATION = "customer_service_v1_customer_service_post"
"""FastAPI's own operationId for the route (stated so that the link below cannot drift from it)."""
NEXT_TURN_LINK = {"NextTurn": {
    "operationId": CUSTOMER_SERVICE_OPERATION,
    "requestBody": {"conversation_id": "$response.body#/conversation_id"},
    "description": "The next turn of the same conversation: send the answer's conversation_id back (with a new "
                   "message), and the turn is read in the context of the previous one."}}
"""OpenAPI link from a customer-service answer to the next turn of its conversation: a generated client learns
the flow from /openapi.json, and schemathesis' stateful phase follows it (bench/fuzz.py)."""


def missing_heads(endpoint: str, heads: set[str] | None) -> list[tuple[str, str]]:
    """(head, task) pairs the endpoint needs and the served model lacks; none when `heads` is None (unknown)."""
    if heads is None:
        return []
    needed = [ENDPOINT_HEADS[endpoint]] + ([ENDPOINT_HEADS["sentiment"]] if endpoint == "customer-service" else [])
    return [(head, task) for head, task in needed if head not in heads]


def _validation_message(error: dict) -> str:
    """One pydantic error as the 422 detail's `msg`. A body that does not say which of an endpoint's data sets
    it is for (a bundle serving two credit data sets, say) gets what to write instead of pydantic's words about
    a discriminator."""
    ctx = error.get("ctx") if isinstance(error.get("ctx"), dict) else {}
    kind = error.get("type")
    if kind == "union_tag_not_found" and ctx.get("discriminator") == "'dataset'":
        return ("this endpoint serves several data sets: say which one in the `dataset` field "
                "(GET /v1/models lists them with their fields)")
    if kind == "union_tag_invalid" and ctx.get("discriminator") == "'dataset'":
        return (f"{ctx.get('tag')!r} is not a data set this endpoint serves; `dataset` must be one of "
                f"{ctx.get('expected_tags')}")
    return str(error.get("msg", "")) + (f": {ctx['error']}" if "error" in ctx else "")


def build_api(backend, options: dict, credit_features: list[dict] | dict[str, list[dict]], window_days: int,
              api_keys: list[str], metrics: Metrics | None = None, heads: set[str] | None = None,
              state: GateState | None = None):
    """The ASGI app. `backend` has async methods credit/stock/sentiment/customer_service(payload) -> task reply,
    ready() -> dict[str, bool], models() -> dict, stats() -> dict. `heads`: the served model's task heads; an
    endpoint whose head is missing answers 503 saying which finetune would add it."""
    app = FastAPI(title="finmm", version="1", description="Multimodal finance models on Ray Serve.",
                  responses={422: {"model": schemas.ErrorResponse}, 400: {"model": schemas.ErrorResponse}})
    app.router.route_class = StrictJSONRoute
    # The config's limits and the bundle's features are in the request models, hence in OpenAPI.
    models = schemas.request_models(credit_features, window_days, options["max_bars"], options["max_texts"],
                                    options["max_text_chars"])
    credit_request, stock_request = models.credit, models.stock
    sentiment_request, customer_request = models.sentiment, models.customer_service
    feature_sets = credit_features.values() if isinstance(credit_features, dict) else [credit_features]
    known = {f["name"] for features in feature_sets for f in features}  # several: a request names its data set

    def rid_of(request: Request) -> str:
        return request.headers.get("x-request-id", "")

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        detail = [{"loc": list(e.get("loc", ())), "msg": _validation_message(e), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "detail": detail, "request_id": rid_of(request)}, 422)

    @app.exception_handler(BodyNotUTF8)
    async def on_not_utf8(request: Request, exc: BodyNotUTF8):
        return JSONResponse({"error": exc.detail, "detail": exc.detail_list(), "request_id": rid_of(request)}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail), "detail": [], "request_id": rid_of(request)},
                            exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception):
        logger.exception("request_id=%s internal error: %s", rid_of(request), type(exc).__name__)
        return JSONResponse({"error": "internal error", "detail": [], "request_id": rid_of(request)}, 500)

    def require_heads(endpoint: str) -> None:
        lacking = missing_heads(endpoint, heads)
        if lacking:
            raise StarletteHTTPException(503, (
                f"the served model has no {' or '.join(h for h, _ in lacking)} head, so /v1/{endpoint} cannot "
                f"answer; finetune one (`finmm finetune --tasks {','.join(t for _, t in lacking)}` or with the "
                f"other tasks) and serve that folder (heads present: {', '.join(sorted(heads or ())) or 'none'})"))

    def answer(reply: dict, request: Request, t0: float) -> JSONResponse:
        rid = rid_of(request)
        if "error" in reply:
            e = reply["error"]
            return JSONResponse({"error": e["message"], "detail": [{"loc": e["loc"], "msg": e["message"],
                                 "type": "invalid_input"}], "request_id": rid}, e["status"])
        timing = {"ingress": (time.perf_counter() - t0) * 1000 - reply["timing"].get("task", 0), **reply["timing"]}
        header = ", ".join(f"{k};dur={v:.1f}" for k, v in timing.items())
        return JSONResponse(reply["result"], headers={"server-timing": header,
                                                      "x-batch-size": str(reply.get("batch_size", 1))})

    @app.post("/v1/credit-risk", response_model=schemas.CreditRiskResponse, tags=["tasks"])
    async def credit_risk(body: credit_request, request: Request):  # type: ignore[valid-type]
        """Probability of default, A-G risk grade, decision at serve.credit_threshold and reason codes."""
        t0 = time.perf_counter()
        require_heads("credit-risk")
        payload = body.model_dump()
        payload["features"] = {k: v for k, v in payload["features"].items() if k in known}
        return answer(await retry_idempotent(backend.credit, payload), request, t0)

    @app.post("/v1/stock-movement", response_model=schemas.StockMovementResponse, tags=["tasks"])
    async def stock_movement(body: stock_request, request: Request):  # type: ignore[valid-type]
        """P(rise) for the next day from recent bars, optional news and an optional chart."""
        t0 = time.perf_counter()
        require_heads("stock-movement")
        return answer(await retry_idempotent(backend.stock, body.model_dump()), request, t0)

    @app.post("/v1/sentiment", response_model=schemas.SentimentResponse, tags=["tasks"])
    async def sentiment(body: sentiment_request, request: Request):  # type: ignore[valid-type]
        """Label, probabilities and driving words for one text or a list (answered in order)."""
        t0 = time.perf_counter()
        require_heads("sentiment")
        payload = {"texts": body.texts if body.texts is not None else [body.text], "_list": body.texts is not None,
                   "explain": body.explain}
        return answer(await retry_idempotent(backend.sentiment, payload), request, t0)

    @app.post("/v1/customer-service", response_model=schemas.CustomerServiceResponse, tags=["tasks"],
              operation_id=CUSTOMER_SERVICE_OPERATION, responses={200: {"links": NEXT_TURN_LINK}})
    async def customer_service(body: customer_request, request: Request):  # type: ignore[valid-type]
        """Intent, confidence, knowledge-base answer, hand-off flag and sentiment; context per conversation_id."""
        t0 = time.perf_counter()
        require_heads("customer-service")
        payload = body.model_dump()
        payload["key_scope"] = key_scope(presented_key(request.headers)) if api_keys else ""  # ids scoped per key
        if body.conversation_id is not None:  # a turn updates the conversation's context: not retried whole
            return answer(await backend.customer_service(payload), request, t0)
        return answer(await retry_idempotent(backend.customer_service, payload), request, t0)

    if getattr(backend, "declared", None):  # the declared tasks' routes (serve/declared.py)
        from serve.declared import add_declared_routes

        add_declared_routes(app, backend.declared, schemas.text_type(options["max_text_chars"]), answer,
                            retry_idempotent)

    if getattr(backend, "opinion", None) is not None:  # the /v1/opinion routes (serve/opinion_api.py)
        add_opinion_routes(app, backend.opinion, options, rid_of)

    @app.get("/", include_in_schema=False)
    async def console():
        """The web console (serve/console/index.html)."""
        return FileResponse(CONSOLE, media_type="text/html", headers={"cache-control": "no-cache"})

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        """Liveness: the ingress answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz():
        """Readiness: every deployment answers and the model is loaded."""
        status = await backend.ready()
        ok = all(status.values())
        return JSONResponse({"ready": ok, "deployments": status}, 200 if ok else 503)

    @app.get("/v1/models", response_model=schemas.ModelInfo, tags=["ops"])
    async def models():
        """Served model: name, version, checkpoint sha256, training date, evaluation figures, and the task
        endpoints with their data sets' own fields."""
        from serve.declared import endpoint_info

        return {**await backend.models(), "endpoints": endpoint_info(getattr(backend, "pre", None), credit_features)}

    @app.get("/v1/stats", tags=["ops"])
    async def stats():
        """Backbone batching statistics (batch sizes seen)."""
        return await backend.stats()

    return Gate(app, options["max_body_bytes"], api_keys, metrics, options.get("access_log", True), state)
