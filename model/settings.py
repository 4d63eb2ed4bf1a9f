"""`model:` section of ray_config.yaml, owned by the model package (pydantic v2, extra keys forbidden)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import SECTIONS, FinMMConfig, TabularConfig, _section

TabularSchema = TabularConfig
"""The data-dependent tabular schema, as fitted by the preprocessing pipeline: `FinMMConfig.tabular`'s own
dataclass (model/config.py), not a second copy of it."""

MOVED_KEYS: dict[str, str] = {
    "image_size": "data.image.image_size",
    "explain_method": "serve.explain_method",
    "ig_steps": "serve.explain_steps",
}
"""Keys that left the `model:` section -> their one home now (an old config gets an error naming both)."""


def _knob(path: str | tuple[str, ...], **constraints: Any) -> Any:
    """A `model:` key whose home is the FinMMConfig field `path` ("section.field", or several that take the same
    value): its default is that field's default, and `to_finmm_config` writes it there."""
    paths = (path,) if isinstance(path, str) else path
    defaults = set()
    for dotted in paths:
        section, name = dotted.split(".")
        (f,) = [f for f in dataclasses.fields(SECTIONS[section]) if f.name == name]
        defaults.add(f.default)
    if len(defaults) != 1:
        raise TypeError(f"the targets {paths} of one model: key have different defaults {defaults}")
    return Field(defaults.pop(), json_schema_extra={"config": list(paths)}, **constraints)


class ModelSection(BaseModel):
    """Settings of the finmm model. Turned into a `FinMMConfig` with `to_finmm_config`.

    The model's schema has one home, `model/config.py` (`FinMMConfig` and its section dataclasses): each key here
    that sets a config field names that field (`_knob`), takes its default from it, and `to_finmm_config` /
    `from_finmm_config` map them generically; nothing is mapped by hand."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    preset: Literal["tiny", "small", "base"] = "small"
    """Size preset: tiny (d=64, 2 layers; tests), small (MiniLM-L6-H384 size), base (d=768, 12 layers; GPUs)."""
    init_from_minilm: bool = True
    """Copy all-MiniLM-L6-v2 into the text path and encoder (only the `small` preset has the matching size)."""
    norm_placement: Literal["post", "pre"] = _knob("encoder.norm_placement")
    """LayerNorm placement in the blocks: post (BERT; required to load MiniLM unchanged) or pre."""
    dropout: float = _knob(("encoder.dropout", "encoder.attention_dropout"), ge=0.0, lt=1.0)
    """Dropout on embeddings, attention probabilities and block outputs."""
    image_patch_size: int = _knob("image.patch_size", gt=0)
    """Side of a square image patch (one token per patch); data.image.image_size must be a multiple of it."""
    series_patch_len: int = _knob("series.patch_len", gt=0)
    """Days of OHLCV per series token."""
    series_max_len: int = _knob("series.max_len", gt=0)
    """Longest price window in days."""
    max_text_positions: int = _knob("text.max_positions", gt=0, le=512)
    """Longest text in tokens (MiniLM has 512 positions)."""
    mlm_weight: float = _knob("objectives.mlm_weight", ge=0.0)
    """Weight of the masked-language-modelling loss."""
    contrastive_weight: float = _knob("objectives.contrastive_weight", ge=0.0)
    """Weight of the image-text contrastive loss."""
    mfm_weight: float = _knob("objectives.mfm_weight", ge=0.0)
    """Weight of each masked-feature-modelling loss (tabular, series)."""
    mlm_probability: float = _knob("objectives.mlm_probability", gt=0.0, lt=1.0)
    """Fraction of real text tokens selected for MLM."""
    mfm_probability: float = _knob("objectives.mfm_probability", gt=0.0, lt=1.0)
    """Fraction of tabular features / series days masked for MFM."""
    heads: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Task heads to attach for fine-tuning: registered head name -> its keyword arguments."""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved = [k for k in MOVED_KEYS if k in data]
            if moved:
                raise ValueError("; ".join(
                    f"model.{k} has moved to {MOVED_KEYS[k]} (its one home): remove it from model: and set "
                    f"{MOVED_KEYS[k]} instead" for k in moved))
        return data

    @classmethod
    def knobs(cls) -> dict[str, list[str]]:
        """Each `model:` key that sets a FinMMConfig field -> the dotted field(s) it sets."""
        return {name: list(f.json_schema_extra["config"]) for name, f in cls.model_fields.items()
                if isinstance(f.json_schema_extra, dict) and "config" in f.json_schema_extra}

    def to_finmm_config(
        self, vocab_size: int, tabular_schema: TabularConfig | dict[str, Any] | None = None, image_size: int = 64
    ) -> FinMMConfig:
        """Build the model config from the preset and these keys; the data-dependent rest comes from preprocessing:
        `vocab_size` from the fitted tokenizer, the tabular schema, and `image_size` (data.image.image_size, the
        side of the images the image actor writes; `BatchLayout.image_size`)."""
        if image_size % self.image_patch_size:
            raise ValueError(
                f"data.image.image_size {image_size} is not a multiple of model.image_patch_size "
                f"{self.image_patch_size}"
            )
        if dataclasses.is_dataclass(tabular_schema):
            tabular_schema = dataclasses.asdict(tabular_schema)
        sections: dict[str, dict[str, Any]] = {
            "text": {"vocab_size": vocab_size},
            "image": {"image_size": image_size},
            "tabular": dataclasses.asdict(_section(TabularConfig, tabular_schema)),
        }
        for name, paths in self.knobs().items():
            for dotted in paths:
                section, field_name = dotted.split(".")
                sections.setdefault(section, {})[field_name] = getattr(self, name)
        return FinMMConfig.from_preset(self.preset, **sections, heads=self.heads)

    @classmethod
    def from_finmm_config(cls, config: FinMMConfig, **rest: Any) -> ModelSection:
        """The `model:` keys a config was built from (the inverse of `to_finmm_config`; `rest`: init_from_minilm
        and the like, which leave no trace in the config)."""
        values: dict[str, Any] = {"preset": config.preset, "heads": dict(config.heads)}
        for name, paths in cls.knobs().items():
            section, field_name = paths[0].split(".")
            values[name] = getattr(getattr(config, section), field_name)
        return cls(**values, **rest)
