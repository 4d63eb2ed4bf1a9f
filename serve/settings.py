"""The `serve:` section of ray_config.yaml, owned by the serving package."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


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


class BatchSettings(_Section):
    max_batch_size: int = Field(16, ge=1)
    """Most requests the backbone encodes in one forward pass."""
    batch_wait_timeout_s: float = Field(0.005, ge=0)
    """How long the backbone waits to fill a batch."""


class ServeSection(_Section):
    http: HttpSettings = Field(default_factory=HttpSettings)
    """HTTP binding and limits."""
    model_dir: Path | None = None
    """A `save_pretrained` folder to serve. Empty serves the latest finetuned folder under artifacts/."""
    ingress: DeploymentSettings = Field(default_factory=DeploymentSettings)
    """The FastAPI ingress deployment."""
    backbone: DeploymentSettings = Field(default_factory=DeploymentSettings)
    """The shared encoder deployment that batches across tasks."""
    tasks: DeploymentSettings = Field(default_factory=DeploymentSettings)
    """Each task deployment (credit, stock, sentiment, customer service)."""
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
