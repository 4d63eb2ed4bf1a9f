"""Compose the deployment graph into one Serve application: `build_app(args) -> Application`.

Layout one_hop (default): Ingress -> Backbone (batched) -> and ConversationStore; the ingress runs the tasks
(serve/tasks.py) in-process. Layout split: a deployment per task between the ingress and the backbone.

`serve deploy` / RayService use `import_path: serve.app:build_app` with `args: {config_path: ...}`; the model
folder comes from args.model_dir, else serve.model_dir, else $FINMM_MODEL_DIR, else artifacts/finetune/latest.
"""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.serve import Application

from serve.api import GateState, Metrics, build_api
from serve.deployments import (
    Backbone,
    ConversationStore,
    InProcess,
    TaskDeployment,
    backbone_caller,
    torch_threads,
)
from serve.opinion import OpinionFront, bind_monitors, shard_names
from serve.preprocess import MODEL_DIR_ENV, Preprocessor, resolve_model_dir
from serve.settings import DeploymentSettings, ServeSection
from serve.tasks import build_tasks

APP_NAME = "finmm"
TASK_DEPLOYMENTS = ("Credit", "Stock", "Sentiment", "CustomerService")
"""The task deployments of layout split."""
DEPLOYMENTS = ("Ingress", "Backbone", *TASK_DEPLOYMENTS, "ConversationStore")


class AppArgs(BaseModel):
    """Arguments of `build_app` (the `args:` of a Serve config)."""

    model_config = ConfigDict(extra="forbid")

    config_path: str | None = None
    """ray_config.yaml to read the `serve:` section from."""
    model_dir: str | None = None
    """A save_pretrained folder; overrides serve.model_dir and $FINMM_MODEL_DIR."""
    serve: dict[str, Any] | None = None
    """A `serve:` section given inline; replaces the config file's."""


def load_serve_section(args: AppArgs) -> ServeSection:
    raw: dict = {}
    if args.config_path:
        data = yaml.safe_load(Path(args.config_path).read_text(encoding="utf-8")) or {}
        raw = data.get("serve") or {}
    if args.serve is not None:
        raw = args.serve
    return ServeSection.model_validate(raw)


def read_api_keys(env_name: str | None, file: str | Path | None) -> list[str]:
    """Keys from $<env_name> (comma-separated) and `file` (one per line, # comments). No keys: no auth."""
    keys = [k.strip() for k in os.environ.get(env_name or "", "").split(",") if k.strip()] if env_name else []
    if file:
        for line in Path(file).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line)
    return keys


def node_cpus() -> float:
    """CPUs of the largest alive node of the Ray cluster this runs on (the machine's cores outside Ray)."""
    try:
        import ray

        if ray.is_initialized():
            return max(float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive"))
    except Exception:  # no cluster to ask: this machine
        pass
    return float(os.cpu_count() or 1)


def backbone_cpus(s: ServeSection, cpus: float) -> float:
    """serve.backbone.num_cpus, else what a node of `cpus` CPUs can give each backbone replica once the
    ingress, the store, the opinion shards (and the split layout's task deployments) and serve.cpu_headroom are
    set aside."""
    if s.backbone.num_cpus is not None:
        return s.backbone.num_cpus
    others = _replicas(s.ingress) * s.ingress.num_cpus + s.tasks.num_cpus  # + the ConversationStore
    others += s.opinion.shards * s.opinion.num_cpus  # the OpinionMonitor shards, one replica each
    if s.layout == "split":
        others += len(TASK_DEPLOYMENTS) * _replicas(s.tasks) * s.tasks.num_cpus
    free = (cpus - others - s.cpu_headroom) / _replicas(s.backbone)
    return max(0.25, math.floor(free * 100) / 100)


def _replicas(d: DeploymentSettings) -> int:
    return d.num_replicas if d.num_replicas is not None else d.autoscaling.max_replicas


def deployment_options(d: DeploymentSettings, min_ongoing: int = 1, num_cpus: float | None = None) -> dict:
    opts: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": num_cpus or d.num_cpus, "num_gpus": d.num_gpus},
        "max_ongoing_requests": max(d.max_ongoing_requests, min_ongoing),
    }
    if d.num_replicas is None:
        a = d.autoscaling
        opts["autoscaling_config"] = {"min_replicas": a.min_replicas, "max_replicas": a.max_replicas,
                                      "target_ongoing_requests": a.target_ongoing_requests}
    else:
        opts["num_replicas"] = d.num_replicas
    return opts


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    """FastAPI ingress. Layout one_hop: runs the tasks (serve/tasks.py) itself and calls the backbone; split:
    hands each request to its task deployment. `tasks` maps task name -> a task deployment's handle, or is
    None for one_hop."""

    def __init__(self, backbone, store, tasks: dict | None, model_dir: str, section: dict,
                 monitors: list | None = None):
        self.section = ServeSection.model_validate(section)
        if isinstance(backbone, dict):  # layout fused: the Backbone's class in this replica (its init arguments)
            backbone = InProcess(Backbone.func_or_class(**backbone))
        self.pre = Preprocessor(Path(model_dir))
        self.handles = {"Backbone": backbone, "ConversationStore": store, **(tasks or {}),
                        **dict(zip(shard_names(len(monitors or [])), monitors or [], strict=True))}
        self.opinion = OpinionFront(self.pre, backbone_caller(backbone), monitors) if monitors else None
        """The /v1/opinion side (serve/opinion.py): scores items through the backbone, routes them to shards."""
        if tasks is None:
            self.tasks = build_tasks(self.pre, backbone_caller(backbone), store, self.section)
            self.predict = {name: task.predict for name, task in self.tasks.items()}
        else:
            self.predict = {name: handle.predict.remote for name, handle in tasks.items()}
        from serve.declared import declared_tasks

        self.declared = declared_tasks(self.pre, backbone_caller(backbone))
        """The declared tasks' endpoints (serve/declared.py), run here in either layout."""
        self.api_keys: list[str] = read_api_keys(self.section.api_keys_env, self.section.api_keys_file)
        """Shared with the gate middleware; `reconfigure` replaces its contents in place."""
        self.gate_state = GateState()
        """In-flight count and draining flag, shared with the gate middleware."""

    def reconfigure(self, user_config: dict) -> None:
        """user_config {"api_keys_env", "api_keys_file"}: re-read the API keys (a lightweight update, no restart)."""
        self.api_keys[:] = read_api_keys(user_config.get("api_keys_env"), user_config.get("api_keys_file"))

    def __serve_build_asgi_app__(self):
        s = self.section
        options = {"max_text_chars": s.max_text_chars, "max_texts": s.max_texts, "max_bars": s.max_bars,
                   "max_body_bytes": s.http.max_body_bytes, "access_log": s.access_log,
                   "opinion": s.opinion.model_dump()}
        try:
            metrics = Metrics()
        except Exception:  # metrics are best effort (e.g. outside a Ray worker)
            metrics = None
        return build_api(self, options, self.pre.credit_feature_sets(), self.pre.data.series.window_days,
                         self.api_keys, metrics, heads=self.pre.heads(), state=self.gate_state)

    async def credit(self, payload: dict) -> dict:
        return await self.predict["Credit"](payload)

    async def stock(self, payload: dict) -> dict:
        return await self.predict["Stock"](payload)

    async def sentiment(self, payload: dict) -> dict:
        return await self.predict["Sentiment"](payload)

    async def customer_service(self, payload: dict) -> dict:
        return await self.predict["CustomerService"](payload)

    async def ready(self) -> dict[str, bool]:
        async def one(handle) -> bool:
            try:
                return bool(await asyncio.wait_for(handle.ready.remote(), timeout=5))
            except Exception:
                return False

        names = list(self.handles)
        results = await asyncio.gather(*(one(self.handles[n]) for n in names))
        return {"Ingress": not self.gate_state.draining, **dict(zip(names, results, strict=True))}

    async def models(self) -> dict:
        return await self.handles["Backbone"].info.remote()

    async def stats(self) -> dict:
        return {"backbone": await self.handles["Backbone"].stats.remote(),
                "conversations": await self.handles["ConversationStore"].size.remote()}

    def drain(self) -> dict:
        """Stop admitting requests (new ones get 503 "shutting down") and report this replica's in-flight count;
        called again, only reports. serve.ops.drain calls it until every replica is drained."""
        self.gate_state.draining = True
        return {"replica": serve.get_replica_context().replica_id.unique_id, "in_flight": self.gate_state.in_flight}


def build_app(args: AppArgs | dict | None = None) -> Application:
    """The finmm Serve application (typed app builder: `serve run serve.app:build_app config_path=...`)."""
    args = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    s = load_serve_section(args)
    model_dir = str(resolve_model_dir(args.model_dir or s.model_dir or os.environ.get(MODEL_DIR_ENV)))
    cpus = backbone_cpus(s, node_cpus())
    b = s.backbone
    ingress_cpus = s.ingress.num_cpus
    backbone_args = {"model_dir": model_dir, "bf16": s.bf16, "explain_method": s.explain_method,
                     "explain_steps": s.explain_steps, "max_batch_size": s.batch.max_batch_size,
                     "batch_wait_timeout_s": s.batch.batch_wait_timeout_s, "bucket_by_length": s.batch.bucket_by_length}
    if s.layout == "fused":  # the ingress replica holds the model: it gets the backbone's CPUs on top of its own
        ingress_cpus += cpus
        backbone = {**backbone_args, "threads": torch_threads(ingress_cpus, b.torch_threads)}
    else:
        backbone = Backbone.options(**deployment_options(b, s.batch.max_batch_size, num_cpus=cpus)).bind(
            **backbone_args, threads=torch_threads(cpus, b.torch_threads))
    store_opts = {**deployment_options(s.tasks), "num_replicas": 1}
    store_opts.pop("autoscaling_config", None)
    store = ConversationStore.options(**store_opts).bind(
        s.max_conversations, s.conversation_ttl_s, str(s.state_dir / "conversations.sqlite"), s.conversations.backend)
    monitors = bind_monitors(s, {**store_opts, "ray_actor_options": {"num_cpus": s.opinion.num_cpus}})
    section = s.model_dump(mode="json")
    tasks = None
    if s.layout == "split":
        tasks = {name: TaskDeployment.options(name=name, **deployment_options(s.tasks)).bind(
            name, backbone, store, model_dir, section) for name in TASK_DEPLOYMENTS}
    keys_config = {"api_keys_env": s.api_keys_env,
                   "api_keys_file": str(s.api_keys_file) if s.api_keys_file else None}
    return Ingress.options(**deployment_options(s.ingress, num_cpus=ingress_cpus), user_config=keys_config).bind(
        backbone, store, tasks, model_dir, section, monitors)
