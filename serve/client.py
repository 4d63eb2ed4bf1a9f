"""Typed Python client for the finmm HTTP API, sync (`FinMMClient`) and async (`AsyncFinMMClient`), on httpx.

    with FinMMClient("http://127.0.0.1:8000", api_key="...") as c:
        c.sentiment("Profits rose sharply").results[0].label
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx

from serve import schemas


class FinMMError(Exception):
    """A 4xx/5xx answer: status, the server's error message, its detail list and the request id."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        self.request_id = body.get("request_id", "")
        super().__init__(f"HTTP {status}: {body.get('error', body)} {body.get('detail', '')} "
                         f"(request {self.request_id})")


def encode_image(image: bytes | str | Path | None) -> str | None:
    """PNG/JPEG bytes or a file path -> base64 text for the API (None stays None)."""
    if image is None:
        return None
    data = Path(image).read_bytes() if isinstance(image, (str, Path)) else image
    return base64.b64encode(data).decode()


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text}
        raise FinMMError(response.status_code, body)
    return response.json()


def _credit(features, text, image, explain) -> dict:
    return {"features": features, "text": text, "image": encode_image(image), "explain": explain}


def _stock(ticker, bars, texts, chart_image, explain) -> dict:
    return {"ticker": ticker, "bars": [list(map(float, b)) for b in bars], "texts": list(texts or []),
            "chart_image": encode_image(chart_image), "explain": explain}


def _sentiment(text) -> dict:
    return {"texts": list(text)} if isinstance(text, (list, tuple)) else {"text": text}


def _cs(message, conversation_id, image) -> dict:
    return {"message": message, "conversation_id": conversation_id, "image": encode_image(image)}


class FinMMClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 30.0):
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout)

    def __enter__(self) -> FinMMClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def credit_risk(self, features: dict[str, float | str | None], text: str | None = None,
                    image: bytes | str | Path | None = None, explain: bool = True) -> schemas.CreditRiskResponse:
        body = _check(self._http.post("/v1/credit-risk", json=_credit(features, text, image, explain)))
        return schemas.CreditRiskResponse.model_validate(body)

    def stock_movement(self, ticker: str, bars, texts=(), chart_image=None,
                       explain: bool = True) -> schemas.StockMovementResponse:
        body = _check(self._http.post("/v1/stock-movement", json=_stock(ticker, bars, texts, chart_image, explain)))
        return schemas.StockMovementResponse.model_validate(body)

    def sentiment(self, text: str | list[str]) -> schemas.SentimentResponse:
        return schemas.SentimentResponse.model_validate(_check(self._http.post("/v1/sentiment", json=_sentiment(text))))

    def customer_service(self, message: str, conversation_id: str | None = None,
                         image=None) -> schemas.CustomerServiceResponse:
        body = _check(self._http.post("/v1/customer-service", json=_cs(message, conversation_id, image)))
        return schemas.CustomerServiceResponse.model_validate(body)

    def models(self) -> schemas.ModelInfo:
        return schemas.ModelInfo.model_validate(_check(self._http.get("/v1/models")))

    def ready(self) -> bool:
        return self._http.get("/readyz").status_code == 200


class AsyncFinMMClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 30.0):
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=timeout)

    async def __aenter__(self) -> AsyncFinMMClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def credit_risk(self, features: dict[str, float | str | None], text: str | None = None,
                          image=None, explain: bool = True) -> schemas.CreditRiskResponse:
        r = await self._http.post("/v1/credit-risk", json=_credit(features, text, image, explain))
        return schemas.CreditRiskResponse.model_validate(_check(r))

    async def stock_movement(self, ticker: str, bars, texts=(), chart_image=None,
                             explain: bool = True) -> schemas.StockMovementResponse:
        r = await self._http.post("/v1/stock-movement", json=_stock(ticker, bars, texts, chart_image, explain))
        return schemas.StockMovementResponse.model_validate(_check(r))

    async def sentiment(self, text: str | list[str]) -> schemas.SentimentResponse:
        r = await self._http.post("/v1/sentiment", json=_sentiment(text))
        return schemas.SentimentResponse.model_validate(_check(r))

    async def customer_service(self, message: str, conversation_id: str | None = None,
                               image=None) -> schemas.CustomerServiceResponse:
        r = await self._http.post("/v1/customer-service", json=_cs(message, conversation_id, image))
        return schemas.CustomerServiceResponse.model_validate(_check(r))

    async def models(self) -> schemas.ModelInfo:
        return schemas.ModelInfo.model_validate(_check(await self._http.get("/v1/models")))

    async def ready(self) -> bool:
        return (await self._http.get("/readyz")).status_code == 200
