"""The four tasks as plain classes: preprocess a request (training's code, no torch), ask the backbone one
`Query`, post-process its answer. The ingress calls them in-process (layout one_hop); the split layout wraps
each in a deployment of its own (serve/deployments.py `TaskDeployment`).

`predict(req)` returns {"result": ..., "timing": {stage: ms}, "batch_size"} or {"error": {"status", "message",
"loc"}}: input errors travel as values, never as exceptions, so a bad request cannot crash a replica.
`infer(query)` is an async callable answering one Query with Engine.infer's dict (through the backbone's
handle, retried when its replica dies: every backbone call is a pure function of its query).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from serve.preprocess import InputError, Preprocessor, Query, decode_image, risk_grade

KB_FILE = Path(__file__).with_name("knowledge_base.json")
SENTIMENT_LABELS = ("negative", "neutral", "positive")
FOLLOW_UP_DECAY = 0.9
"""A follow-up answered from context reports the previous turn's confidence times this."""

Infer = Callable[[Query], Awaitable[dict]]


def load_knowledge_base() -> list[dict]:
    return json.loads(KB_FILE.read_text(encoding="utf-8"))["intents"]


def ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def _error(exc: InputError) -> dict:
    return {"error": exc.to_dict()}


def _reply(result: dict, pre_ms: float, out: dict, t0: float) -> dict:
    return {"result": result, "timing": {"preprocess": pre_ms, "backbone": out["backbone_ms"], "task": ms_since(t0)},
            "batch_size": out["batch_size"]}


class Credit:
    head = "credit_risk"

    def __init__(self, pre: Preprocessor, infer: Infer, threshold: float, n_reasons: int):
        self.pre, self.infer, self.threshold, self.n_reasons = pre, infer, threshold, n_reasons

    async def predict(self, req: dict) -> dict:
        t0 = time.perf_counter()
        try:
            row = self.pre.credit_row(req["features"], req.get("text"), req.get("image"), req.get("dataset"))
        except InputError as exc:
            return _error(exc)
        pre_ms = ms_since(t0)
        out = await self.infer(Query(row, (self.head,), self.head if req.get("explain", True) else None))
        p = float(out["heads"][self.head]["probs"])
        reasons = []
        if "attribution" in out:
            prefix = f"{row.dataset}."
            tab = sorted(out["attribution"].get("tabular", {}).items(), key=lambda kv: -kv[1])
            reasons = [{"feature": k.removeprefix(prefix).split("__", 1)[-1], "attribution": v}  # own fields only
                       for k, v in tab if v > 0 and k.startswith(prefix)][: self.n_reasons]
        result = {"dataset": row.dataset, "probability_of_default": p, "risk_grade": risk_grade(p),
                  "decision": "decline" if p >= self.threshold else "approve", "threshold": self.threshold,
                  "reason_codes": reasons}
        return _reply(result, pre_ms, out, t0)


class Stock:
    head = "stock_movement"

    def __init__(self, pre: Preprocessor, infer: Infer):
        self.pre, self.infer = pre, infer

    async def predict(self, req: dict) -> dict:
        t0 = time.perf_counter()
        try:  # drawing the chart takes milliseconds of CPU: off the event loop
            row = await asyncio.to_thread(self.pre.stock_row, req["bars"], req.get("texts") or None,
                                          req.get("chart_image"))
        except InputError as exc:
            return _error(exc)
        pre_ms = ms_since(t0)
        explain = self.head if req.get("explain", True) else None
        out = await self.infer(Query(row, (self.head,), explain, target=1))
        p_up = float(out["heads"][self.head]["probs"][1])
        contributions = out.get("attribution", {}).get("modalities", {})
        result = {"ticker": req["ticker"], "probability_up": p_up, "direction": "up" if p_up >= 0.5 else "down",
                  "contributions": contributions, "chart_rendered": req.get("chart_image") is None}
        return _reply(result, pre_ms, out, t0)


def sentiment_result(out: dict) -> dict[str, Any]:
    """The sentiment answer for one text from its backbone output."""
    probs = out["heads"]["sentiment"]["probs"]
    k = int(np.argmax(probs))
    words = [{"word": w, "attribution": s} for w, s in out.get("attribution", {}).get("words", [])]
    top = [w["word"] for w in sorted(words, key=lambda w: -w["attribution"]) if w["attribution"] > 0][:5]
    return {"label": SENTIMENT_LABELS[k],
            "probabilities": {lab: float(p) for lab, p in zip(SENTIMENT_LABELS, probs, strict=True)},
            "words": words, "top_words": top}


class Sentiment:
    head = "sentiment"

    def __init__(self, pre: Preprocessor, infer: Infer):
        self.pre, self.infer = pre, infer

    async def predict(self, req: dict) -> dict:
        t0 = time.perf_counter()
        try:
            rows = [self.pre.text_row(t, ("body", "texts", i) if req.get("_list") else ("body", "text"))
                    for i, t in enumerate(req["texts"])]
        except InputError as exc:
            return _error(exc)
        pre_ms = ms_since(t0)
        explain = self.head if req.get("explain", True) else None
        outs = await asyncio.gather(*(self.infer(Query(r, (self.head,), explain)) for r in rows))
        return {"result": {"results": [sentiment_result(o) for o in outs]},
                "timing": {"preprocess": pre_ms, "backbone": max(o["backbone_ms"] for o in outs),
                           "task": ms_since(t0)},
                "batch_size": max(o["batch_size"] for o in outs)}


class CustomerService:
    """Answer rule (see docs/serving.md):
    1. confidence >= handoff_confidence: the predicted intent's knowledge-base answer ("intent");
    2. else, if the conversation's previous turn stored an intent: answer for that intent, with the previous
       confidence x FOLLOW_UP_DECAY ("context") — "and how long will that take?" continues the last topic;
    3. else: the KB answer whose intent-head embedding is closest (cosine) to the message's ("retrieval").
    handoff = final confidence < handoff_confidence or the message's sentiment is negative.
    The intent and the sentiment come from one backbone forward (both heads read the same [CLS] state)."""

    heads = ("intent", "sentiment")

    def __init__(self, pre: Preprocessor, infer: Infer, store, handoff_confidence: float):
        self.pre, self.infer, self.store = pre, infer, store
        self.handoff_confidence = handoff_confidence
        self.kb = load_knowledge_base()
        self._kb_embeddings: np.ndarray | None = None
        self._kb_lock = asyncio.Lock()

    async def _kb_matrix(self) -> np.ndarray:
        async with self._kb_lock:
            if self._kb_embeddings is None:
                rows = [self.pre.text_row(e["answer"]) for e in self.kb]
                outs = await asyncio.gather(*(self.infer(Query(r, ("intent",))) for r in rows))
                self._kb_embeddings = np.stack([o["heads"]["intent"]["embedding"] for o in outs])  # (77, E)
        return self._kb_embeddings

    async def predict(self, req: dict) -> dict:
        t0 = time.perf_counter()
        try:
            row = self.pre.text_row(req["message"], ("body", "message"))
            if req.get("image") is not None:
                pixels = decode_image(req["image"], self.pre.data, ("body", "image"))
                row.columns["pixel_values"] = pixels.ravel()
        except InputError as exc:
            return _error(exc)
        pre_ms = ms_since(t0)
        cid = req.get("conversation_id")
        scope = req.get("key_scope", "")  # SHA-256 of the caller's API key (serve.conversation_store.key_scope)
        previous_ref = self.store.get.remote(cid, scope) if cid else None
        out = await self.infer(Query(row, self.heads))
        previous = await previous_ref if previous_ref is not None else None
        intent_out = out["heads"]["intent"]
        probs = intent_out["probs"]
        k = int(np.argmax(probs))
        confidence = float(probs[k])
        intent, source = k, "intent"
        if confidence < self.handoff_confidence:
            if previous is not None:
                intent, source = previous["intent"], "context"
                confidence = float(previous["confidence"]) * FOLLOW_UP_DECAY
            else:
                kb = await self._kb_matrix()
                intent, source = int(np.argmax(kb @ intent_out["embedding"])), "retrieval"
        sentiment = sentiment_result(out)["label"]
        turn = (previous or {}).get("turn", 0) + 1
        if cid:
            await self.store.put.remote(cid, {"intent": intent, "confidence": confidence, "turn": turn}, scope)
        names = [e["intent"] for e in self.kb]
        result = {"intent": names[intent] if intent < len(names) else str(intent), "confidence": confidence,
                  "answer": self.kb[intent]["answer"] if intent < len(self.kb) else "",
                  "answer_source": source,
                  "handoff": confidence < self.handoff_confidence or sentiment == "negative",
                  "sentiment": sentiment, "conversation_id": cid, "turn": turn}
        return _reply(result, pre_ms, out, t0)


def build_tasks(pre: Preprocessor, infer: Infer, store, section) -> dict[str, Any]:
    """The four task objects over one preprocessor and backbone caller; `section` is the ServeSection."""
    return {"Credit": Credit(pre, infer, section.credit_threshold, section.reason_codes),
            "Stock": Stock(pre, infer), "Sentiment": Sentiment(pre, infer),
            "CustomerService": CustomerService(pre, infer, store, section.handoff_confidence)}
