"""The sample requests `finmm demo` sends: real rows of the prepared data, through the typed client."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd


def credit_features(output_dir: Path) -> dict:
    """The first Lending Club test applicant's raw application fields (the served model's inputs)."""
    folder = Path(output_dir) / "lending_club" / "test"
    row = pd.read_parquet(next(iter(sorted(folder.glob("*.parquet"))))).iloc[0]
    features = {}
    for column, value in row.items():
        if column.startswith(("num__", "cat__")):
            name = column.split("__", 1)[1]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            features[name] = float(value) if column.startswith("num__") else str(value)
    return features


def stock_bars(data_root: Path, ticker: str = "AAPL", before: str = "2015-12-01", n: int = 31) -> list[list[float]]:
    """The `n` daily OHLCV bars of `ticker` before `before`, from StockNet's raw prices."""
    prices = pd.read_csv(Path(data_root) / "stocknet" / "price" / "raw" / f"{ticker}.csv")
    prices = prices[prices["Date"] < before].dropna().tail(n)
    return prices[["Open", "High", "Low", "Close", "Volume"]].astype(float).values.tolist()


def send_samples(base_url: str, output_dir: Path, data_root: Path) -> list[dict]:
    """One request per endpoint (two turns of chat); returns what each answered and how fast."""
    from serve.client import FinMMClient

    rows: list[dict] = []

    def timed(endpoint: str, call, describe):
        started = time.perf_counter()
        try:
            answer = call()
            rows.append({"endpoint": endpoint, "ok": True, "answer": describe(answer),
                         "ms": 1000 * (time.perf_counter() - started)})
        except Exception as exc:  # a failed endpoint is reported in the summary, not raised
            rows.append({"endpoint": endpoint, "ok": False, "answer": f"{type(exc).__name__}: {exc}"[:160],
                         "ms": 1000 * (time.perf_counter() - started)})

    with FinMMClient(base_url, timeout=120) as client:
        timed("/v1/credit-risk", lambda: client.credit_risk(credit_features(output_dir)),
              lambda a: f"P(default) {a.probability_of_default:.3f}, grade {a.risk_grade}, {a.decision}")
        bars = stock_bars(data_root)
        timed("/v1/stock-movement", lambda: client.stock_movement("AAPL", bars, texts=["$aapl iphone sales beat"]),
              lambda a: f"P(rise) {a.probability_up:.3f}, {a.direction}")
        timed("/v1/sentiment", lambda: client.sentiment(["Operating profit rose to EUR 13.1 mn.", "公司业绩大幅下滑"]),
              lambda a: ", ".join(r.label for r in a.results))
        first = {}

        def chat_first():
            answer = client.customer_service("My new card still hasn't arrived, where is it?",
                                             conversation_id="demo-conversation")
            first["id"] = answer.conversation_id
            return answer

        describe = lambda a: f"{a.intent} ({a.confidence:.2f}), handoff={a.handoff}"  # noqa: E731
        timed("/v1/customer-service", chat_first, describe)
        timed("/v1/customer-service (follow-up)",
              lambda: client.customer_service("and how long will that take?", conversation_id=first.get("id")),
              describe)
    return rows
