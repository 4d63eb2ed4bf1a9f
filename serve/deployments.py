"""The Ray Serve deployments behind the ingress.

    Ingress ──> Credit ─────────┐
            ──> Stock ──────────┤
            ──> Sentiment ──────┼──> Backbone (one FinMMForTask, @serve.batch across tasks)
            ──> CustomerService ┘      ^
                   │  └──> Sentiment ──┘
                   └──> ConversationStore (LRU + TTL context per conversation id)

Task deployments preprocess (actors/* via serve.engine.Preprocessor) and post-process; the backbone owns the
only model copy and runs, per batch, one no-grad forward over every request (rows of different tasks padded
into one batch) plus the attributions (one explain() per head present, with gradients). Attributions run in
the backbone so that one copy of the weights serves both and they share its batching.
Task methods return {"result": ..., "timing": {stage: ms}} or {"error": {"status", "message", "loc"}}: input
errors travel as values, never as exceptions, so a bad request cannot crash a replica.
A replica that dies mid-request (process killed, node lost) surfaces as a RayActorError at the caller;
idempotent calls (every backbone forward, and the task predictions the ingress marks idempotent) are retried
on another replica by `retry_idempotent`, so a client sees a slower answer rather than a 500 (see
docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np
from ray import serve

from serve.preprocess import InputError, Preprocessor, decode_image, risk_grade

logger = logging.getLogger("ray.serve")
KB_FILE = Path(__file__).with_name("knowledge_base.json")
SENTIMENT_LABELS = ("negative", "neutral", "positive")
FOLLOW_UP_DECAY = 0.9
"""A follow-up answered from context reports the previous turn's confidence times this."""


def load_knowledge_base() -> list[dict]:
    return json.loads(KB_FILE.read_text(encoding="utf-8"))["intents"]


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def _error(exc: InputError) -> dict:
    return {"error": exc.to_dict()}


RETRY_ATTEMPTS = 3
"""Tries of an idempotent call when the replica serving it dies (the first try included)."""
RETRY_BACKOFF_S = 0.25
"""Wait before the second try; doubled before each further one (Serve meanwhile routes around the dead replica)."""


def replica_died(exc: BaseException) -> bool:
    """True for the errors of a replica that went away mid-request (not for errors raised by the code it ran).
    A RayTaskError caused by a dead downstream replica is an instance of its cause, so it counts too."""
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import ReplicaUnavailableError

    return isinstance(exc, RayActorError | ReplicaUnavailableError)


async def retry_idempotent(call, *args, attempts: int = RETRY_ATTEMPTS, backoff_s: float = RETRY_BACKOFF_S):
    """`await call(*args)`, tried again (with exponential backoff) while the replica serving it died. Only for
    calls that are safe to repeat: a retried request may have run partly on the dead replica."""
    for attempt in range(attempts):
        try:
            return await call(*args)
        except Exception as exc:
            if not replica_died(exc) or attempt == attempts - 1:
                raise
            logger.warning("replica died during %s (%s); retry %d of %d", getattr(call, "__qualname__", call),
                           type(exc).__name__, attempt + 1, attempts - 1)
            await asyncio.sleep(backoff_s * 2 ** attempt)


@serve.deployment(name="Backbone")
class Backbone:
    def __init__(self, model_dir: str, bf16: bool, explain_method: str, explain_steps: int,
                 max_batch_size: int, batch_wait_timeout_s: float):
        from serve.engine import Engine  # torch is imported only in the backbone's replicas

        self.engine = Engine(model_dir, bf16=bf16, explain_method=explain_method, explain_steps=explain_steps)
        self.infer.set_max_batch_size(max_batch_size)
        self.infer.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        from ray.serve.metrics import Histogram

        self.batch_hist = Histogram("finmm_backbone_batch_size", description="Requests per backbone forward pass",
                                    boundaries=[1, 2, 4, 8, 16, 32, 64])

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def infer(self, items: list[dict]) -> list[dict]:
        """items: {"row": Row, "head": str, "explain": bool, "target": int | None} -> {"probs", ["embedding"],
        ["attribution"], "batch_size", "backbone_ms"}."""
        t0 = time.perf_counter()
        self.batch_sizes.append(len(items))
        self.batch_hist.observe(len(items))
        rows, heads = [it["row"] for it in items], [it["head"] for it in items]
        out = self.engine.forward(rows, heads)
        for head in {h for h, it in zip(heads, items, strict=True) if it.get("explain")}:
            idx = [i for i, it in enumerate(items) if it.get("explain") and it["head"] == head]
            targets = [items[i].get("target") for i in idx]
            target = targets if all(t is not None for t in targets) else None
            for i, attr in zip(idx, self.engine.attribute([rows[i] for i in idx], head, target), strict=True):
                out[i]["attribution"] = attr
        ms = _ms(t0)
        for o in out:
            o["batch_size"], o["backbone_ms"] = len(items), ms
        return out

    def stats(self) -> dict:
        sizes = list(self.batch_sizes)
        return {"batches": len(sizes), "requests": sum(sizes), "max_batch_size": max(sizes, default=0),
                "mean_batch_size": float(np.mean(sizes)) if sizes else 0.0, "recent": sizes[-50:]}

    def info(self) -> dict:
        return self.engine.info()

    def ready(self) -> bool:
        return self.engine.model is not None


class _Task:
    """Shared by the task deployments: the bundle's preprocessing and a handle to the backbone."""

    head = ""

    def __init__(self, backbone, model_dir: str):
        self.backbone = backbone
        self.pre = Preprocessor(Path(model_dir))

    async def _infer(self, row, explain: bool, target: int | None = None) -> dict:
        """One backbone forward; a pure function of the row, so retried when the backbone replica dies."""
        item = {"row": row, "head": self.head, "explain": explain, "target": target}
        return await retry_idempotent(lambda: self.backbone.infer.remote(item))

    def ready(self) -> bool:
        return True


@serve.deployment(name="Credit")
class Credit(_Task):
    head = "credit_risk"

    def __init__(self, backbone, model_dir: str, threshold: float, n_reasons: int):
        super().__init__(backbone, model_dir)
        self.threshold, self.n_reasons = threshold, n_reasons

    async def predict(self, req: dict) -> dict:
        t0 = time.perf_counter()
        try:
            row = self.pre.credit_row(req["features"], req.get("text"), req.get("image"))
        except InputError as exc:
            return _error(exc)
        pre_ms = _ms(t0)
        out = await self._infer(row, req.get("explain", True))
        p = float(out["probs"])
        reasons = []
        if "attribution" in out:
            prefix = f"{row.dataset}."
            tab = sorted(out["attribution"].get("tabular", {}).items(), key=lambda kv: -kv[1])
            reasons = [{"feature": k.removeprefix(prefix).split("__", 1)[-1], "attribution": v}  # own fields only
                       for k, v in tab if v > 0 and k.startswith(prefix)][: self.n_reasons]
        result = {"probability_of_default": p, "risk_grade": risk_grade(p),
                  "decision": "decline" if p >= self.threshold else "approve", "threshold": self.threshold,
                  "reason_codes": reasons}
        return {"result": result, "timing": {"preprocess": pre_ms, "backbone": out["backbone_ms"],
                                             "task": _ms(t0)}, "batch_size": out["batch_size"]}


@serve.deployment(name="Stock")
class Stock(_Task):
    head = "stock_movement"

    async def predict(self, req: dict) -> dict:
        t0 = time.perf_counter()
        try:
            row = self.pre.stock_row(req["bars"], req.get("texts") or None, req.get("chart_image"))
        except InputError as exc:
            return _error(exc)
        pre_ms = _ms(t0)
        out = await self._infer(row, req.get("explain", True), target=1)
        p_up = float(out["probs"][1])
        contributions = out.get("attribution", {}).get("modalities", {})
        result = {"ticker": req["ticker"], "probability_up": p_up, "direction": "up" if p_up >= 0.5 else "down",
                  "contributions": contributions, "chart_rendered": req.get("chart_image") is None}
        return {"result": result, "timing": {"preprocess": pre_ms, "backbone": out["backbone_ms"],
                                             "task": _ms(t0)}, "batch_size": out["batch_size"]}


@serve.deployment(name="Sentiment")
class Sentiment(_Task):
    head = "sentiment"

    async def predict(self, req: dict) -> dict:
        t0 = time.perf_counter()
        texts = req["texts"]
        try:
            rows = [self.pre.text_row(t, ("body", "texts", i) if req.get("_list") else ("body", "text"))
                    for i, t in enumerate(texts)]
        except InputError as exc:
            return _error(exc)
        pre_ms = _ms(t0)
        outs = await asyncio.gather(*(self._infer(r, req.get("explain", True)) for r in rows))
        results = []
        for out in outs:
            probs = out["probs"]
            k = int(np.argmax(probs))
            words = [{"word": w, "attribution": s} for w, s in out.get("attribution", {}).get("words", [])]
            top = [w["word"] for w in sorted(words, key=lambda w: -w["attribution"]) if w["attribution"] > 0][:5]
            results.append({"label": SENTIMENT_LABELS[k],
                            "probabilities": {lab: float(p) for lab, p in zip(SENTIMENT_LABELS, probs, strict=True)},
                            "words": words, "top_words": top})
        return {"result": {"results": results},
                "timing": {"preprocess": pre_ms, "backbone": max(o["backbone_ms"] for o in outs), "task": _ms(t0)},
                "batch_size": max(o["batch_size"] for o in outs)}


@serve.deployment(name="ConversationStore", num_replicas=1)
class ConversationStore:
    """Per-conversation context: an LRU of at most `max_items` conversations, each forgotten `ttl_s` after
    its last turn. One replica by design (the state lives here)."""

    def __init__(self, max_items: int, ttl_s: float):
        self.max_items, self.ttl_s = max_items, ttl_s
        self.items: OrderedDict[str, dict] = OrderedDict()

    def _expire(self, now: float) -> None:
        # entries are ordered by last turn (put moves to the end), so the stalest is always first
        while self.items and now - next(iter(self.items.values()))["updated"] > self.ttl_s:
            self.items.popitem(last=False)
        while len(self.items) > self.max_items:
            self.items.popitem(last=False)

    def get(self, conversation_id: str) -> dict | None:
        self._expire(time.monotonic())
        return self.items.get(conversation_id)

    def put(self, conversation_id: str, entry: dict) -> None:
        now = time.monotonic()
        self.items[conversation_id] = {**entry, "updated": now}
        self.items.move_to_end(conversation_id)
        self._expire(now)

    def size(self) -> int:
        return len(self.items)

    def ready(self) -> bool:
        return True


@serve.deployment(name="CustomerService")
class CustomerService(_Task):
    """Answer rule (see docs/serving.md):
    1. confidence >= handoff_confidence: the predicted intent's knowledge-base answer ("intent");
    2. else, if the conversation's previous turn stored an intent: answer for that intent, with the previous
       confidence x FOLLOW_UP_DECAY ("context") — "and how long will that take?" continues the last topic;
    3. else: the KB answer whose intent-head embedding is closest (cosine) to the message's ("retrieval").
    handoff = final confidence < handoff_confidence or the message's sentiment is negative."""

    head = "intent"

    def __init__(self, backbone, sentiment, store, model_dir: str, handoff_confidence: float):
        super().__init__(backbone, model_dir)
        self.sentiment, self.store = sentiment, store
        self.handoff_confidence = handoff_confidence
        self.kb = load_knowledge_base()
        self._kb_embeddings: np.ndarray | None = None
        self._kb_lock = asyncio.Lock()

    async def _kb_matrix(self) -> np.ndarray:
        async with self._kb_lock:
            if self._kb_embeddings is None:
                rows = [self.pre.text_row(e["answer"]) for e in self.kb]
                outs = await asyncio.gather(*(self._infer(r, False) for r in rows))
                self._kb_embeddings = np.stack([o["embedding"] for o in outs])  # (77, E), unit norm
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
        pre_ms = _ms(t0)
        cid = req.get("conversation_id")
        sentiment_ref = self.sentiment.predict.remote({"texts": [req["message"]], "explain": False})
        previous = await self.store.get.remote(cid) if cid else None
        out = await self._infer(row, False)
        probs = out["probs"]
        k = int(np.argmax(probs))
        confidence = float(probs[k])
        intent, source = k, "intent"
        if confidence < self.handoff_confidence:
            if previous is not None:
                intent, source = previous["intent"], "context"
                confidence = float(previous["confidence"]) * FOLLOW_UP_DECAY
            else:
                kb = await self._kb_matrix()
                intent, source = int(np.argmax(kb @ out["embedding"])), "retrieval"
        sentiment = (await sentiment_ref)["result"]["results"][0]["label"]
        turn = (previous or {}).get("turn", 0) + 1
        if cid:
            await self.store.put.remote(cid, {"intent": intent, "confidence": confidence, "turn": turn})
        names = [e["intent"] for e in self.kb]
        result = {"intent": names[intent] if intent < len(names) else str(intent), "confidence": confidence,
                  "answer": self.kb[intent]["answer"] if intent < len(self.kb) else "",
                  "answer_source": source,
                  "handoff": confidence < self.handoff_confidence or sentiment == "negative",
                  "sentiment": sentiment, "conversation_id": cid, "turn": turn}
        return {"result": result, "timing": {"preprocess": pre_ms, "backbone": out["backbone_ms"],
                                             "task": _ms(t0)}, "batch_size": out["batch_size"]}

