"""FinMMConfig: a transformers config with one typed section per modality.

Each section is a small dataclass whose fields document themselves (litgpt style). Inside the
`PreTrainedConfig` the sections are held as dataclass instances and serialised as plain dicts, so
`to_dict()` / `from_dict()` / `save_pretrained()` round-trip through JSON.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from transformers import PretrainedConfig

MODALITIES: tuple[str, ...] = ("text", "image", "tabular", "series")
"""Fixed modality order: index into the modality-type embedding, and order of segments in the sequence."""


@dataclass
class TextConfig:
    vocab_size: int = 30522
    """Token vocabulary: MiniLM's 30522 WordPiece ids plus any added (CJK) tokens appended at the end."""
    max_positions: int = 512
    """Number of learned text position embeddings (longest text the model accepts)."""
    pad_token_id: int = 0
    """Id of [PAD]."""
    unk_token_id: int = 100
    """Id of [UNK]."""
    cls_token_id: int = 101
    """Id of [CLS]; text position 0 is expected to hold it and doubles as the fused sequence's CLS slot."""
    sep_token_id: int = 102
    """Id of [SEP]."""
    mask_token_id: int = 103
    """Id of [MASK], written by the MLM masker."""


@dataclass
class ImageConfig:
    image_size: int = 64
    """Side of the square input image in pixels (H = W)."""
    patch_size: int = 8
    """Side of a square ViT patch; image_size must be a multiple of it."""
    num_channels: int = 3
    """Input channels (RGB)."""

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


CATEGORY_UNSEEN_ID = 0
"""Categorical id of a value not in the train vocabulary."""
CATEGORY_MISSING_ID = 1
"""Categorical id of a missing value (kept apart from unseen, as the baselines keep "missing" a category)."""
CATEGORY_FIRST_VALUE_ID = 2
"""Categorical id of a feature's most frequent train value; the others follow by descending count."""


@dataclass
class TabularConfig:
    numeric_features: list[str] = field(default_factory=list)
    """Names of the numeric features, in column order of `tabular.numeric`."""
    categorical_features: list[str] = field(default_factory=list)
    """Names of the categorical features, in column order of `tabular.categorical`."""
    categorical_cardinalities: list[int] = field(default_factory=list)
    """Vocabulary size of each categorical feature, counting the unseen id 0 and the missing id 1."""
    numeric_bins: list[list[float]] = field(default_factory=list)
    """Per numeric feature, the piecewise-linear bin edges fitted on train (standardised units). Empty: a plain
    linear embedding of the value."""
    numeric_reference: list[float] = field(default_factory=list)
    """Per numeric feature, the reference applicant's value (train median) that attributions start from."""
    categorical_reference: list[int] = field(default_factory=list)
    """Per categorical feature, the reference applicant's id (train mode)."""

    @property
    def feature_names(self) -> list[str]:
        return list(self.numeric_features) + list(self.categorical_features)

    @property
    def num_features(self) -> int:
        return len(self.numeric_features) + len(self.categorical_features)


@dataclass
class SeriesConfig:
    channels: list[str] = field(default_factory=lambda: ["open", "high", "low", "close", "volume"])
    """Names of the per-day channels of `series.values` (last dimension C)."""
    patch_len: int = 1
    """Days per series token; a window of L days becomes ceil(L / patch_len) tokens."""
    max_len: int = 256
    """Longest window in days (sets the number of learned patch positions)."""

    @property
    def max_patches(self) -> int:
        return math.ceil(self.max_len / self.patch_len)


@dataclass
class EncoderConfig:
    hidden_size: int = 384
    """Width D of every token."""
    num_layers: int = 6
    """Number of Transformer blocks L."""
    num_heads: int = 12
    """Attention heads per block; hidden_size must be a multiple of it."""
    intermediate_size: int = 1536
    """Inner width of the feed-forward network."""
    hidden_act: str = "gelu"
    """Feed-forward activation: "gelu" (exact erf GELU, as BERT/MiniLM) or "gelu_tanh"."""
    dropout: float = 0.1
    """Dropout on embeddings, attention output and feed-forward output."""
    attention_dropout: float = 0.1
    """Dropout on attention probabilities."""
    layer_norm_eps: float = 1e-12
    """LayerNorm epsilon (1e-12 as BERT/MiniLM)."""
    norm_placement: str = "post"
    """"post" (BERT style, x = LN(x + f(x)); loads MiniLM unchanged) or "pre" (x = x + f(LN(x)), plus a final LN)."""
    initializer_range: float = 0.02
    """Std of the normal init of fresh weights."""

    def __post_init__(self) -> None:
        if self.norm_placement not in ("post", "pre"):
            raise ValueError(f"encoder.norm_placement must be 'post' or 'pre', got {self.norm_placement!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"encoder.hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")


@dataclass
class ObjectivesConfig:
    mlm_weight: float = 1.0
    """Weight of the masked-language-modelling loss in the pretraining total."""
    contrastive_weight: float = 1.0
    """Weight of the image-text contrastive (InfoNCE) loss."""
    mfm_weight: float = 1.0
    """Weight of each masked-feature-modelling loss (tabular and series)."""
    mlm_probability: float = 0.15
    """Fraction of real, non-special text tokens chosen for MLM."""
    mfm_probability: float = 0.15
    """Fraction of tabular features / series days masked for MFM."""
    projection_dim: int = 0
    """Width of the contrastive projections; 0 means hidden_size."""
    logit_scale_init: float = math.log(1 / 0.07)
    """Initial log of the contrastive inverse temperature (CLIP: log(1/0.07))."""
    logit_scale_max: float = math.log(100.0)
    """The log inverse temperature is clamped to [0, this] in forward, as open_clip does."""


@dataclass
class ExplainConfig:
    method: str = "integrated_gradients"
    """Default attribution method: "integrated_gradients" or "grad_x_input"."""
    ig_steps: int = 32
    """Riemann steps (trapezoid rule) for integrated gradients."""


SECTIONS: dict[str, type] = {
    "text": TextConfig,
    "image": ImageConfig,
    "tabular": TabularConfig,
    "series": SeriesConfig,
    "encoder": EncoderConfig,
    "objectives": ObjectivesConfig,
    "explain": ExplainConfig,
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=256),
    "small": dict(hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
}
"""Encoder sizes by name: tiny for tests, small = MiniLM-L6-H384 (initialised from it), base for GPUs."""


def _section(cls: type, value: Any) -> Any:
    if isinstance(value, cls):
        return value
    value = dict(value or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - names
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} for config section {cls.__name__}")
    return cls(**value)


class FinMMConfig(PretrainedConfig):
    """Config of the finmm multimodal Transformer. Sections: text, image, tabular, series, encoder,
    objectives, explain; `heads` maps a task-head name to its keyword arguments."""

    model_type: ClassVar[str] = "finmm"

    preset: str = "custom"
    """Name of the size preset this config was built from (informational)."""
    text: TextConfig = field(default_factory=TextConfig)
    """Text embedder section."""
    image: ImageConfig = field(default_factory=ImageConfig)
    """Image patch embedder section."""
    tabular: TabularConfig = field(default_factory=TabularConfig)
    """Tabular schema (data-dependent)."""
    series: SeriesConfig = field(default_factory=SeriesConfig)
    """OHLCV series embedder section."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Fusion encoder sizes and norm placement."""
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)
    """Pretraining loss weights and masking rates."""
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    """Attribution defaults."""
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Task heads of a FinMMForTask: name -> keyword arguments of the registered head (e.g. num_classes)."""

    def __post_init__(self, **kwargs: Any) -> None:
        for name, cls in SECTIONS.items():
            setattr(self, name, _section(cls, getattr(self, name)))
        self.heads = {k: dict(v or {}) for k, v in dict(self.heads or {}).items()}
        super().__post_init__(**kwargs)

    # transformers looks these up on the config
    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    @property
    def initializer_range(self) -> float:
        return self.encoder.initializer_range

    @property
    def num_hidden_layers(self) -> int:
        return self.encoder.num_layers

    @property
    def num_attention_heads(self) -> int:
        return self.encoder.num_heads

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in SECTIONS:
            if dataclasses.is_dataclass(out.get(name)):
                out[name] = dataclasses.asdict(out[name])
        return out

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> FinMMConfig:
        """Build a config from a size preset. Overrides are either whole sections
        (`text={"vocab_size": 30600}`; merged into the section) or top-level fields."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        sections: dict[str, dict[str, Any]] = {"encoder": dict(PRESETS[name])}
        if name == "tiny":
            sections["text"] = {"max_positions": 128}
        for key, value in overrides.items():
            if key in SECTIONS:
                if dataclasses.is_dataclass(value):
                    value = dataclasses.asdict(value)
                sections.setdefault(key, {}).update(value)
        rest = {k: v for k, v in overrides.items() if k not in SECTIONS}
        return cls(preset=name, **sections, **rest)
