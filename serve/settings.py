"""The `serve:` section of ray_config.yaml, owned by the serving package."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    """Interface the HTTP proxy binds to. Loopback by default; set 0.0.0.0 only behind a gateway."""
    port: int = Field(8000, ge=1, le=65535)
    """HTTP port."""
    max_body_bytes: int = Field(2_000_000, ge=1024)
    """Requests with a larger body get 413."""


class AutoscalingSettings(_Section):
    min_replicas: int = Field(1, ge=0)
    """Fewest replicas the autoscaler keeps."""
    max_replicas: int = Field(2, ge=1)
    """Most replicas the autoscaler starts."""
    target_ongoing_requests: float = Field(8.0, gt=0)
    """Ongoing requests per replica the autoscaler aims for."""


class DeploymentSettings(_Section):
    num_replicas: int | None = Field(1, ge=1)
    """Fixed replica count. Empty turns on autoscaling with `autoscaling`."""
    autoscaling: AutoscalingSettings = Field(default_factory=AutoscalingSettings)
    """Autoscaling bounds, used when num_replicas is empty."""
    num_cpus: float = Field(0.25, gt=0)
    """CPUs per replica. Fractional: at 1 CPU each, a graph of six deployments does not fit on 2 cores."""
    num_gpus: float = Field(0.0, ge=0)
    """GPUs per replica."""
    max_ongoing_requests: int = Field(32, ge=1)
    """Requests a replica accepts at once; it also caps how large @serve.batch batches can get."""


class IngressSettings(DeploymentSettings):
    max_ongoing_requests: int = Field(256, ge=1)
    """Requests an ingress replica accepts at once. High, because the ingress only awaits the backbone: a lower
    cap queues requests in the proxy, where a draining shutdown cannot see them."""


class BackboneSettings(DeploymentSettings):
    num_cpus: float | None = Field(None, gt=0)
    """CPUs per backbone replica. Empty: what the largest node can give once the other deployments and
    `serve.cpu_headroom` are set aside, split over the replicas (1.15 on a 2-CPU machine). Never every CPU:
    Ray Data and Train tasks on the same cluster need some, and pools that reserve all CPUs hang."""
    max_ongoing_requests: int = Field(128, ge=1)
    """Queries a backbone replica accepts at once. Above the clients you expect: at 32 with 64 clients the
    ingress's router held the rest back and throughput halved (17.5 req/s; 33.7 at 128)."""
    torch_threads: int | None = Field(None, ge=1)
    """torch intra-op threads in a backbone replica. Empty: num_cpus rounded up, at most the machine's cores
    (Ray gives a fractional-CPU actor OMP_NUM_THREADS=1, which would otherwise leave torch on one thread)."""


class BatchSettings(_Section):
    max_batch_size: int = Field(16, ge=1)
    """Most requests the backbone encodes in one forward pass."""
    batch_wait_timeout_s: float = Field(0.01, ge=0)
    """Under load, how long the backbone waits to fill a batch. Adaptive: when no other query is in flight, a
    batch starts at once (a lone request never waits); while others are, the next batch waits up to this long
    (requests also queue during a forward, which runs off the event loop). 0: never wait."""
    bucket_by_length: bool = True
    """Split a batch into forwards by text length (powers of two) and modalities present, so one long text or
    one chart does not pad every short text of the batch."""


class OpinionSettings(_Section):
    """The opinion monitor (docs/opinion.md): windows, decay and alerts of the index kept per ticker."""

    windows_s: list[int] = Field(default_factory=lambda: [3600, 86400], min_length=1, max_length=8)
    """Window sizes (seconds) the index is kept in; each item counts in one window of each size.
    `GET /v1/opinion/{ticker}?window=` takes exactly these (an `enum` in OpenAPI)."""
    ew_decay: float = Field(0.8, gt=0, lt=1)
    """Weight of a window one window older in the exponentially weighted index (an empty window only ages)."""
    alert_k: float = Field(3.0, gt=0)
    """A window whose mean is more than this many standard deviations from its recent history raises an alert."""
    alert_history: int = Field(20, ge=3)
    """Earlier non-empty windows an alert is judged against (at least 3 must exist)."""
    alert_min_items: int = Field(5, ge=1)
    """Fewest items a window needs before it can raise an alert."""
    retain_windows: int = Field(400, ge=4)
    """Windows kept per ticker and window size; older ones are folded into one carry row (bounded memory,
    the EW index stays exact). Must exceed alert_history."""
    max_items: int = Field(64, ge=1, le=1024)
    """Most items in one `POST /v1/opinion/items`."""
    shards: int = Field(2, ge=1, le=64)
    """OpinionMonitor deployments; each owns the tickers that hash to it (crc32 % shards), in its own SQLite
    file (or server schema). Changing it moves tickers to other files: replay into a fresh state_dir after a
    change."""
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    """Where each shard's state lives: sqlite (a file per shard under state_dir; embedded, no server) or
    postgresql (a shared server store for replicas on several nodes: the server at $FINMM_DATABASE_URL, one
    schema per shard, `finmm_opinion_<i>_of_<n>`). The URL is read from the replicas' environment, never from
    this file. docs/opinion.md."""
    num_cpus: float = Field(0.05, gt=0)
    """CPUs per monitor replica (SQLite work only: items are scored in the ingress, through the Backbone)."""

    @model_validator(mode="after")
    def _history_kept(self):
        if self.retain_windows <= self.alert_history:
            raise ValueError("opinion.retain_windows must exceed opinion.alert_history (alerts read kept windows)")
        return self


class ConversationSettings(_Section):
    backend: Literal["sqlite", "postgresql", "memory"] = "sqlite"
    """Where customer-service context lives: sqlite (a file under state_dir; survives a killed store replica),
    postgresql (a shared server store: the server at $FINMM_DATABASE_URL, schema `finmm_conversations`; the URL
    is read from the replicas' environment, never from this file) or memory (an in-process LRU, lost with its
    replica). docs/opinion.md."""


class ServeSection(_Section):
    http: HttpSettings = Field(default_factory=HttpSettings)
    """HTTP binding and limits."""
    model_dir: Path | None = None
    """A `save_pretrained` folder to serve. Empty serves the latest finetuned folder under artifacts/."""
    layout: Literal["one_hop", "split", "fused"] = "one_hop"
    """one_hop: the ingress runs each task's pre- and post-processing itself and calls the backbone (proxy ->
    Ingress -> Backbone). split: one deployment per task between them (proxy -> Ingress -> task -> Backbone),
    for multi-node installs where tasks scale apart; one hop more per request. fused: the backbone's batcher
    and model run inside each ingress replica (proxy -> Ingress), no hop to a backbone replica; for small
    nodes, where every process and hop takes CPU from the forward (docs/benchmarks/serve.md); the ingress
    replica then gets the backbone's CPUs and torch threads, and scaling the ingress scales model copies."""
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    """The FastAPI ingress deployment."""
    backbone: BackboneSettings = Field(default_factory=BackboneSettings)
    """The shared encoder deployment that batches across tasks."""
    tasks: DeploymentSettings = Field(default_factory=DeploymentSettings)
    """Each task deployment (credit, stock, sentiment, customer service) of the split layout, and the
    ConversationStore's CPUs."""
    cpu_headroom: float = Field(0.25, ge=0)
    """CPUs left unreserved when the backbone's num_cpus is chosen automatically."""
    access_log: bool = False
    """One log line per request (request id, endpoint, status, ms; never bodies) from the ingress, and Ray
    Serve's own access log. Off by default (docs/benchmarks/serve.md measures both)."""
    batch: BatchSettings = Field(default_factory=BatchSettings)
    """Cross-task batching in the backbone."""
    bf16: bool = True
    """Run inference in bfloat16 where the CPU supports it (AMX); fp32 otherwise."""
    api_keys_env: str = "FINMM_API_KEYS"
    """Environment variable holding comma-separated API keys. No keys means no authentication."""
    api_keys_file: Path | None = None
    """File with one API key per line, read at start-up (in addition to the env var)."""
    credit_threshold: float = Field(0.5, gt=0, lt=1)
    """Probability of default at or above which a credit application is declined."""
    handoff_confidence: float = Field(0.5, gt=0, lt=1)
    """Customer-service intents below this confidence are handed to a human."""
    max_text_chars: int = Field(5000, ge=1)
    """Longest text (characters) a request may carry in any text field; longer gets 422."""
    max_texts: int = Field(64, ge=1)
    """Most texts in one sentiment request or news list of a stock-movement request."""
    max_bars: int = Field(512, ge=2)
    """Most OHLCV bars in one stock-movement request (at least data.series.window_days+1 are required)."""
    explain_method: Literal["integrated_gradients", "grad_x_input"] = "integrated_gradients"
    """Attribution method for reason codes, words and modality contributions, against the reference applicant
    (model.explain). The one home of the explanation settings: `finmm evaluate`'s reports read this and the two
    below too, so they show the codes the server answers with. integrated_gradients (the default) costs
    explain_steps+1 forward/backward passes and satisfies completeness; grad_x_input costs one."""
    explain_steps: int = Field(8, ge=1, le=128)
    """Integrated-gradient steps when explain_method is integrated_gradients (the reports use the same)."""
    reason_codes: int = Field(4, ge=1, le=20)
    """Reason codes returned per credit decision (and shown per example in the credit report)."""
    max_conversations: int = Field(10_000, ge=1)
    """Conversations the customer-service context store keeps; the least recently used is dropped."""
    conversation_ttl_s: float = Field(1800.0, gt=0)
    """A conversation idle longer than this is forgotten."""
    conversations: ConversationSettings = Field(default_factory=ConversationSettings)
    """The customer-service conversation store."""
    opinion: OpinionSettings = Field(default_factory=OpinionSettings)
    """The opinion monitor behind /v1/opinion."""
    state_dir: Path = Field(Path("artifacts/serve-state"), validate_default=True)
    """Folder of the SQLite files the served state lives in (conversations, one file per opinion shard).
    A relative path is made absolute where the config is read (the directory `finmm serve` runs in)."""

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, v: Path) -> Path:
        return v if v.is_absolute() else (Path.cwd() / v).resolve()
