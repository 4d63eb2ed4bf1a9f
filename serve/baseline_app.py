"""The baseline a user would write: one FastAPI + uvicorn process, the same model and preprocessing
(serve.engine), fp32, one forward (and one explanation) per request, no batching, no Ray.
Used by bench/serve.py. Run: `python -m serve.baseline_app MODEL_DIR PORT`."""

from __future__ import annotations

import sys

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from serve.preprocess import InputError, risk_grade

LABELS = ("negative", "neutral", "positive")


def create_app(model_dir: str, bf16: bool = False, threshold: float = 0.5) -> FastAPI:
    from serve.engine import Engine

    engine = Engine(model_dir, bf16=bf16)
    app = FastAPI(title="finmm baseline")

    @app.post("/v1/sentiment")
    def sentiment(body: dict):
        texts = body.get("texts") or [body.get("text")]
        results = []
        for text in texts:
            try:
                row = engine.pre.text_row(text)
            except InputError as exc:
                return JSONResponse({"error": exc.message}, exc.status)
            probs = engine.forward([row], ["sentiment"])[0]["probs"]
            words = engine.attribute([row], "sentiment")[0].get("words", []) if body.get("explain", True) else []
            results.append({"label": LABELS[int(np.argmax(probs))],
                            "probabilities": dict(zip(LABELS, map(float, probs), strict=True)),
                            "words": [{"word": w, "attribution": s} for w, s in words]})
        return {"results": results}

    @app.post("/v1/credit-risk")
    def credit(body: dict):
        try:
            row = engine.pre.credit_row(body["features"], body.get("text"), body.get("image"))
        except InputError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        p = float(engine.forward([row], ["credit_risk"])[0]["probs"])
        reasons = []
        if body.get("explain", True):
            tab = engine.attribute([row], "credit_risk")[0].get("tabular", {})
            reasons = [{"feature": k, "attribution": v} for k, v in sorted(tab.items(), key=lambda kv: -kv[1])
                       if v > 0][:4]
        return {"probability_of_default": p, "risk_grade": risk_grade(p),
                "decision": "decline" if p >= threshold else "approve", "reason_codes": reasons}

    return app


if __name__ == "__main__":  # pragma: no cover
    import uvicorn

    uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
