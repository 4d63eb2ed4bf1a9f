"""What the driver hands each training worker: a JSON-serialisable description of the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from actors.collate import BatchLayout
from cluster.settings import TrainerSettings
from cluster.streams import StreamSpec
from model.settings import ModelSection


@dataclass
class LoopSpec:
    kind: str
    """"pretrain" or "finetune"."""
    run_dir: str
    trainer: dict
    model: dict
    vocab_size: int
    layout: dict
    streams: list[dict]
    total_steps: int
    steps_per_epoch: int
    tokenizer_path: str
    preprocessing_state: dict
    init_from: str | None = None
    heads: dict[str, dict] = field(default_factory=dict)
    validation: list[dict] = field(default_factory=list)
    """Finetuning: [{"task", "dataset", "head", "key_prefix"}] scored after each epoch."""
    pretrain_export: str = "backbone"
    trainable: str = "all"
    """Pretraining: `pretrain.trainable` ("all" or "new_vocab")."""
    schedule: list[int] | None = None
    """Interleaved finetuning (`finetune.task_epochs`): the stream index each step trains. None: every stream,
    every step."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LoopSpec:
        return cls(**data)

    @property
    def trainer_settings(self) -> TrainerSettings:
        return TrainerSettings.model_validate(self.trainer)

    @property
    def model_section(self) -> ModelSection:
        return ModelSection.model_validate(self.model)

    @property
    def batch_layout(self) -> BatchLayout:
        return BatchLayout.from_dict(self.layout)

    @property
    def stream_specs(self) -> list[StreamSpec]:
        return [StreamSpec(**s) for s in self.streams]
