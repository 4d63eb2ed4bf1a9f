"""The `cluster:`, `pretrain:` and `finetune:` sections of ray_config.yaml, owned by the training package."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TaskName = str
"""A task of the registry (actors/tasks.py: the built-ins and data.tasks); checked where the config is joined
(finmm/config.py), since the registry lives in the data section."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ClusterSection(_Section):
    address: str | None = None
    """Ray address to connect to (`auto`, `ray://host:10001`). Empty starts a local cluster in-process."""
    num_cpus: int | None = Field(None, ge=1)
    """CPUs of the local cluster when one is started. Empty lets Ray count them."""
    include_dashboard: bool = False
    """Start the Ray dashboard with a local cluster (costs ~1 GB of memory and 10 processes)."""
    job_address: str = "http://127.0.0.1:8265"
    """Ray Jobs API address that `finmm submit` and `finmm jobs` talk to."""
    runtime_env: dict[str, object] = Field(default_factory=dict)
    """Ray runtime_env for submitted jobs and workers (env_vars, pip, ...). working_dir is the repo."""
    storage_path: Path = Path("artifacts/runs")
    """Where Ray Train writes run folders, checkpoints and metrics."""
    auth_mode: Literal["disabled", "token"] = "disabled"
    """Ray token authentication (RAY_AUTH_MODE) for `finmm submit`/`jobs`. `disabled` suits a private dev
    cluster; use `token` on a shared cluster (the token is read from ~/.ray/auth_token or RAY_AUTH_TOKEN)."""


class DeepSpeedSettings(_Section):
    zero_stage: Literal[0, 1, 2, 3] = 2
    """ZeRO stage: 0 plain data parallel, 1 shards optimizer state, 2 also gradients, 3 also parameters."""
    precision: Literal["auto", "fp32", "bf16-mixed", "bf16", "fp16"] = "auto"
    """Training precision. `auto`: bf16-mixed on a CPU with AMX/AVX512-BF16 (fp32 without), bf16 on a GPU
    that has it. `bf16-mixed`: fp32 weights and optimizer, bf16 matmuls under torch.autocast (what serving
    runs). `bf16`: DeepSpeed's bf16 mode (bf16 weights, fp32 master copy). fp16 is GPU-only."""
    offload_optimizer: Literal["none", "cpu"] = "none"
    """Keep optimizer state in host memory (ZeRO stage >= 1)."""
    offload_params: Literal["none", "cpu"] = "none"
    """Keep parameters in host memory (ZeRO stage 3 only)."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    """Micro-batches accumulated before each optimizer step."""
    gradient_clipping: float = Field(1.0, ge=0)
    """Clip the global gradient norm to this value; 0 disables clipping."""

    @model_validator(mode="after")
    def _offload_needs_the_right_stage(self) -> DeepSpeedSettings:
        if self.offload_params != "none" and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3 (only ZeRO-3 partitions parameters)")
        if self.offload_optimizer != "none" and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3")
        return self


class TrainerSettings(_Section):
    num_workers: int = Field(2, ge=1)
    """Ray Train workers (one process each; one GPU each when use_gpu)."""
    use_gpu: bool = False
    """Give each worker a GPU and use NCCL and the fused optimizer; otherwise gloo and torch AdamW."""
    cpus_per_worker: float = Field(1.0, gt=0)
    """CPUs reserved per training worker."""
    deepspeed: DeepSpeedSettings = Field(default_factory=DeepSpeedSettings)
    """DeepSpeed ZeRO settings."""
    batch_size: int = Field(32, ge=1)
    """Micro-batch size per worker."""
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate of AdamW for pretrained weights (MiniLM's text path and encoder, or the backbone
    of the bundle a run starts from). With nothing pretrained, every parameter takes it."""
    new_module_learning_rate: float | None = Field(1e-3, gt=0)
    """Peak learning rate of newly initialised modules (tabular, image and series embedders, task and
    pretraining heads) when the run starts from pretrained weights. Empty: they take learning_rate."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay of weight matrices; biases, norms and embeddings never decay."""
    warmup_steps: int = Field(0, ge=0)
    """Linear warm-up steps before the linear decay."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps. Empty runs `epochs` full epochs."""
    epochs: int = Field(1, ge=1)
    """Passes over the training data when max_steps is empty."""
    stop_after_steps: int | None = Field(None, ge=1)
    """End this run early at this step, with a checkpoint, keeping the schedule of the full run; continue
    later with --resume (for time-boxed or preemptible jobs). Empty runs to the end."""
    checkpoint_every: int = Field(200, ge=1)
    """Save a checkpoint every this many steps, and always at the end."""
    keep_checkpoints: int = Field(2, ge=1)
    """Checkpoints Ray Train keeps (CheckpointConfig.num_to_keep)."""
    max_failures: int = Field(2, ge=0)
    """Worker failures a run survives by restarting from its last checkpoint (FailureConfig)."""
    log_every: int = Field(10, ge=1)
    """Print losses, learning rate and throughput every this many steps."""
    seed: int = 0
    """Seed for initialisation, masking and shuffling."""

    @model_validator(mode="after")
    def _fp16_needs_a_gpu(self) -> TrainerSettings:
        if self.deepspeed.precision == "fp16" and not self.use_gpu:
            raise ValueError("deepspeed.precision fp16 needs use_gpu: true; on CPU use bf16 or fp32")
        return self


class PretrainSection(TrainerSettings):
    text_datasets: list[str] = Field(
        default_factory=lambda: [
            "financial_phrasebank",
            "fincuge_finfe",
            "fincuge_finnl",
            "banking77",
            "lending_club",
            "stocknet",
        ]
    )
    """Data sets whose train-split text feeds masked language modelling."""
    tabular_datasets: list[str] = Field(default_factory=lambda: ["lending_club"])
    """Data sets whose train-split tabular rows feed masked feature modelling. German Credit is left out by
    default: its 5-fold cross-validation makes every row a test row once, and test rows never enter pretraining."""
    pair_datasets: list[str] = Field(default_factory=lambda: ["stocknet"])
    """Data sets whose chart-image/tweet pairs feed image-text contrastive learning."""
    output_dir: Path = Path("artifacts/pretrain")
    """Where the final pretrained `save_pretrained` folder is written."""
    trainable: Literal["all", "new_vocab"] = "all"
    """What pretraining updates. `all`: every parameter. `new_vocab`: only the word-embedding rows of the tokens
    `finmm prepare` appended to the base vocabulary (ids from its base_vocab_size up: the CJK characters) and the
    MLM head; the encoder and every other row and embedder stay frozen, bit for bit (the Chinese warm start,
    cluster/recipes/cjk_warmstart.yaml). Needs weight_decay 0, text_datasets, and no tabular or pair data sets."""

    @model_validator(mode="after")
    def _new_vocab_is_usable(self) -> PretrainSection:
        if self.trainable != "new_vocab":
            return self
        if self.weight_decay != 0:
            raise ValueError("pretrain.trainable new_vocab needs pretrain.weight_decay: 0 (AdamW's decay would move "
                             "the frozen base-vocabulary rows, which share one tensor with the trained rows)")
        if not self.text_datasets:
            raise ValueError("pretrain.trainable new_vocab trains by masked language modelling: set "
                             "pretrain.text_datasets")
        if self.tabular_datasets or self.pair_datasets:
            raise ValueError("pretrain.trainable new_vocab freezes the masked-feature and contrastive heads: set "
                             "pretrain.tabular_datasets: [] and pretrain.pair_datasets: []")
        return self


class FinetuneSection(TrainerSettings):
    tasks: list[TaskName] = Field(default_factory=lambda: ["sentiment"])
    """Tasks `finmm finetune` trains when --task/--tasks is not given."""
    init_from: Path | None = None
    """A `save_pretrained` folder to start from. Empty uses the latest pretrained folder, else the preset."""
    output_dir: Path = Path("artifacts/finetune")
    """Where each task's finetuned `save_pretrained` folder is written."""
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate of AdamW for finetuning."""
    epochs: int = Field(3, ge=1)
    """Passes over the task's training data."""
    input_modalities: list[Literal["text", "image", "tabular", "series"]] = Field(default_factory=list)
    """Modalities the finetune feeds the model (training and validation). Empty: every modality the task's
    data sets carry. `[tabular]` on credit_risk trains the tabular-only model that the text lift is measured
    against."""
    loss_weights: dict[TaskName, float] = Field(default_factory=dict)
    """Weight of each task's loss in a multi-task finetune's summed loss (a step draws one micro-batch per
    task), e.g. `{sentiment: 1.0, customer_service: 0.5}`. A task left out weighs 1.0. With one task a
    weight only rescales the gradient, so tune the learning rate instead."""

    task_epochs: dict[TaskName, float] = Field(default_factory=dict)
    """Interleaved multi-task finetuning: passes over each task's train data, e.g. `{customer_service: 3,
    sentiment: 3, credit_risk: 0.2}`. Each optimizer step then trains ONE task's micro-batch, the tasks' steps
    spread evenly through the run (cluster/task_schedule.py), so a large or costly task need not ride along on
    every step. It sets the run's length: `epochs` and `max_steps` are not used, and every task in the run
    needs an entry. Validation runs ceil(max of the epochs) times. Empty: every step draws one micro-batch of
    every task and sums the losses."""

    @model_validator(mode="after")
    def _task_epochs_are_usable(self) -> FinetuneSection:
        import math

        for task, epochs in self.task_epochs.items():
            if not math.isfinite(epochs) or epochs <= 0:
                raise ValueError(f"finetune.task_epochs.{task} is {epochs}; use a finite number of passes > 0")
        if self.task_epochs and self.max_steps is not None:
            raise ValueError("finetune.task_epochs sets the run's length; leave finetune.max_steps empty")
        return self

    @model_validator(mode="after")
    def _loss_weights_are_usable(self) -> FinetuneSection:
        import math

        for task, weight in self.loss_weights.items():
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"finetune.loss_weights.{task} is {weight}; use a finite number >= 0")
        if self.loss_weights and not any(self.loss_weights.get(t, 1.0) > 0 for t in self.tasks):
            raise ValueError("finetune.loss_weights gives every task in finetune.tasks weight 0; nothing would train")
        return self
