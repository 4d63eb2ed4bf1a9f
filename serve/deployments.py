"""The Ray Serve deployments: the batching Backbone, the ConversationStore and, for the split layout, one
deployment per task.

    layout one_hop (default):  proxy -> Ingress (tasks in-process) -> Backbone
                                                  └──> ConversationStore
    layout split:              proxy -> Ingress -> Credit | Stock | Sentiment | CustomerService -> Backbone

The backbone owns the only model copy. `infer` is a @serve.batch method: a batch is whatever queued while the
previous forward ran (batch_wait_timeout_s 0: a lone request never waits), the forward runs in a worker thread
so the replica's event loop keeps taking requests, and Engine.infer splits the batch into forwards by text
length and modalities. A customer-service query asks for two heads of one forward.
A replica that dies mid-request (process killed, node lost) surfaces as a RayActorError at the caller;
idempotent calls (every backbone forward, and the task predictions the ingress marks idempotent) are retried
on another replica by `retry_idempotent`, so a client sees a slower answer rather than a 500 (see
docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import time
from collections import deque
from pathlib import Path

import numpy as np
from ray import serve

from serve.preprocess import Preprocessor, Query
from serve.tasks import build_tasks, ms_since

logger = logging.getLogger("ray.serve")


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


def torch_threads(num_cpus: float, configured: int | None = None) -> int:
    """torch threads for a replica holding `num_cpus` CPUs: `configured`, else num_cpus rounded up, at most
    the machine's cores."""
    return configured or max(1, min(math.ceil(num_cpus - 1e-9), os.cpu_count() or 1))


@serve.deployment(name="Backbone")
class Backbone:
    def __init__(self, model_dir: str, bf16: bool, explain_method: str, explain_steps: int,
                 max_batch_size: int, batch_wait_timeout_s: float, threads: int, bucket_by_length: bool = True):
        os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch is imported; Ray set 1 for a fractional CPU
        import torch

        from serve.engine import Engine  # torch is imported only in the backbone's replicas

        torch.set_num_threads(threads)
        self.engine = Engine(model_dir, bf16=bf16, explain_method=explain_method, explain_steps=explain_steps)
        self.bucket = bucket_by_length
        self.wait_s = batch_wait_timeout_s
        self._batch.set_max_batch_size(max_batch_size)
        self._batch.set_batch_wait_timeout_s(0.0)
        self.in_flight = 0
        """Queries received and not yet answered (the adaptive wait reads it)."""
        self.calls = 0
        """Queries answered (one per `infer` call): what a request costs the backbone."""
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        from ray.serve.metrics import Histogram

        self.batch_hist = Histogram("finmm_backbone_batch_size", description="Requests per backbone forward pass",
                                    boundaries=[1, 2, 4, 8, 16, 32, 64])
        logger.info("Backbone: torch %d intra-op threads (OMP_NUM_THREADS=%s), bf16=%s, explain=%s, batches up to "
                    "%d, wait %.3f s, bucketed by length: %s", torch.get_num_threads(), os.environ["OMP_NUM_THREADS"],
                    self.engine.bf16, explain_method, max_batch_size, batch_wait_timeout_s, bucket_by_length)

    async def infer(self, query: Query) -> dict:
        """One query -> Engine.infer's answer with "backbone_ms" (its whole batch's time), batched."""
        self.calls += 1
        self.in_flight += 1
        try:
            return await self._batch(query)
        finally:
            self.in_flight -= 1

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _batch(self, queries: list[Query]) -> list[dict]:
        t0 = time.perf_counter()
        self.batch_sizes.append(len(queries))
        self.batch_hist.observe(len(queries))
        out = await asyncio.to_thread(self.engine.infer, queries, self.bucket)  # the loop keeps queueing
        # Adaptive wait: while other queries are in flight (load), the next batch waits up to wait_s to fill;
        # with none, a lone request starts its forward at once.
        self._batch.set_batch_wait_timeout_s(self.wait_s if self.in_flight > len(queries) else 0.0)
        ms = ms_since(t0)
        for o in out:
            o["backbone_ms"] = ms
        return out

    def stats(self) -> dict:
        sizes = list(self.batch_sizes)
        return {"calls": self.calls, "batches": len(sizes), "forwards": self.engine.forwards,
                "requests": sum(sizes), "max_batch_size": max(sizes, default=0),
                "mean_batch_size": float(np.mean(sizes)) if sizes else 0.0, "recent": sizes[-50:]}

    def info(self) -> dict:
        import torch

        return {**self.engine.info(), "torch_threads": torch.get_num_threads()}

    def ready(self) -> bool:
        return self.engine.model is not None


@serve.deployment(name="ConversationStore", num_replicas=1)
class ConversationStore:
    """Per-conversation context by (key scope, conversation id): at most `max_items` conversations, each
    forgotten `ttl_s` after its last turn, in SQLite at `path` by default, or in the PostgreSQL server at
    $FINMM_DATABASE_URL (`backend: postgresql`; serve/conversation_store.py), so a killed replica comes back with
    its state. One replica by design (the LRU bound is kept by one writer)."""

    def __init__(self, max_items: int, ttl_s: float, path: str | None = None, backend: str = "sqlite"):
        from serve.conversation_store import open_conversations

        self.store = open_conversations("memory" if path is None and backend == "sqlite" else backend, path,
                                        max_items, ttl_s)

    def get(self, conversation_id: str, scope: str = "") -> dict | None:
        return self.store.get(scope, conversation_id)

    def put(self, conversation_id: str, entry: dict, scope: str = "") -> None:
        self.store.put(scope, conversation_id, entry)

    def size(self) -> int:
        return self.store.size()

    def ready(self) -> bool:
        return True


class InProcess:
    """A deployment class's instance in this process, called through the handle interface the ingress uses
    (`obj.method.remote(*args)` -> awaitable): the Backbone of layout fused."""

    def __init__(self, obj):
        self._obj = obj

    def __getattr__(self, name: str):
        method = getattr(self._obj, name)

        class _Method:
            @staticmethod
            async def remote(*args, **kwargs):
                out = method(*args, **kwargs)
                return await out if inspect.isawaitable(out) else out

        return _Method


def backbone_caller(backbone):
    """The tasks' `infer`: one Query through the backbone's handle, retried when its replica dies."""
    async def infer(query: Query) -> dict:
        return await retry_idempotent(lambda: backbone.infer.remote(query))

    return infer


@serve.deployment(name="Task")
class TaskDeployment:
    """Layout split: one task (serve/tasks.py, by `name`) in a deployment of its own, named after it."""

    def __init__(self, name: str, backbone, store, model_dir: str, section: dict):
        from serve.settings import ServeSection

        tasks = build_tasks(Preprocessor(Path(model_dir)), backbone_caller(backbone), store,
                            ServeSection.model_validate(section))
        self.task = tasks[name]

    async def predict(self, req: dict) -> dict:
        return await self.task.predict(req)

    def ready(self) -> bool:
        return True
