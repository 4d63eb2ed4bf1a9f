"""The baseline a user would write: one FastAPI + uvicorn process, the same model, preprocessing and engine
(serve.engine, `Engine.infer` per request: the same forward and explanation code, the same precision), no
batching, no Ray; torch on every core. Sync endpoints, so uvicorn runs concurrent requests in its thread pool.
Used by bench/serve.py. Run: `python -m serve.baseline_app MODEL_DIR PORT [--fp32] [--explain-method M]`."""

from __future__ import annotations

import argparse
import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from serve.preprocess import InputError, Query, risk_grade
from serve.tasks import sentiment_result


def create_app(model_dir: str, bf16: bool = True, explain_method: str = "integrated_gradients",
               explain_steps: int = 8, threshold: float = 0.5, threads: int | None = None) -> FastAPI:
    import torch

    from serve.engine import Engine

    torch.set_num_threads(threads or os.cpu_count() or 1)
    engine = Engine(model_dir, bf16=bf16, explain_method=explain_method, explain_steps=explain_steps)
    app = FastAPI(title="finmm baseline")

    @app.post("/v1/sentiment")
    def sentiment(body: dict):
        texts = body.get("texts") or [body.get("text")]
        explain = "sentiment" if body.get("explain", True) else None
        results = []
        for text in texts:
            try:
                row = engine.pre.text_row(text)
            except InputError as exc:
                return JSONResponse({"error": exc.message}, exc.status)
            results.append(sentiment_result(engine.infer([Query(row, ("sentiment",), explain)])[0]))
        return {"results": results}

    @app.post("/v1/credit-risk")
    def credit(body: dict):
        try:
            row = engine.pre.credit_row(body["features"], body.get("text"), body.get("image"))
        except InputError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        explain = "credit_risk" if body.get("explain", True) else None
        out = engine.infer([Query(row, ("credit_risk",), explain)])[0]
        p = float(out["heads"]["credit_risk"]["probs"])
        tab = out.get("attribution", {}).get("tabular", {})
        reasons = [{"feature": k, "attribution": v} for k, v in sorted(tab.items(), key=lambda kv: -kv[1])
                   if v > 0][:4]
        return {"probability_of_default": p, "risk_grade": risk_grade(p),
                "decision": "decline" if p >= threshold else "approve", "reason_codes": reasons}

    return app


if __name__ == "__main__":  # pragma: no cover
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("port", type=int)
    ap.add_argument("--fp32", action="store_true", help="fp32 instead of bf16 (where the CPU has bf16)")
    ap.add_argument("--explain-method", default="integrated_gradients")
    ap.add_argument("--explain-steps", type=int, default=8)
    args = ap.parse_args()
    app = create_app(args.model_dir, bf16=not args.fp32, explain_method=args.explain_method,
                     explain_steps=args.explain_steps)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
