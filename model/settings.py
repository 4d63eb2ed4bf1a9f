"""`model:` section of ray_config.yaml, owned by the model package (pydantic v2, extra keys forbidden)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .config import FinMMConfig


class TabularSchema(BaseModel):
    """The data-dependent tabular schema, as fitted by the preprocessing pipeline."""

    model_config = ConfigDict(extra="forbid")

    numeric_features: list[str] = Field(default_factory=list)
    """Names of the numeric features, in column order."""
    categorical_features: list[str] = Field(default_factory=list)
    """Names of the categorical features, in column order."""
    categorical_cardinalities: list[int] = Field(default_factory=list)
    """Vocabulary size of each categorical feature, counting the unseen id 0 and the missing id 1."""
    numeric_bins: list[list[float]] = Field(default_factory=list)
    """Per numeric feature, its piecewise-linear bin edges fitted on train (empty: a linear embedding)."""
    numeric_reference: list[float] = Field(default_factory=list)
    """Per numeric feature, the reference applicant's value (train median, standardised)."""
    categorical_reference: list[int] = Field(default_factory=list)
    """Per categorical feature, the reference applicant's id (train mode)."""


class ModelSection(BaseModel):
    """Settings of the finmm model. Turned into a `FinMMConfig` with `to_finmm_config`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    preset: Literal["tiny", "small", "base"] = "small"
    """Size preset: tiny (d=64, 2 layers; tests), small (MiniLM-L6-H384 size), base (d=768, 12 layers; GPUs)."""
    init_from_minilm: bool = True
    """Copy all-MiniLM-L6-v2 into the text path and encoder (only the `small` preset has the matching size)."""
    norm_placement: Literal["post", "pre"] = "post"
    """LayerNorm placement in the blocks: post (BERT; required to load MiniLM unchanged) or pre."""
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    """Dropout on embeddings, attention probabilities and block outputs."""
    image_size: int = Field(64, gt=0)
    """Side of the square input image in pixels."""
    image_patch_size: int = Field(8, gt=0)
    """Side of a square image patch (one token per patch)."""
    series_patch_len: int = Field(1, gt=0)
    """Days of OHLCV per series token."""
    series_max_len: int = Field(256, gt=0)
    """Longest price window in days."""
    max_text_positions: int = Field(512, gt=0, le=512)
    """Longest text in tokens (MiniLM has 512 positions)."""
    mlm_weight: float = Field(1.0, ge=0.0)
    """Weight of the masked-language-modelling loss."""
    contrastive_weight: float = Field(1.0, ge=0.0)
    """Weight of the image-text contrastive loss."""
    mfm_weight: float = Field(1.0, ge=0.0)
    """Weight of each masked-feature-modelling loss (tabular, series)."""
    mlm_probability: float = Field(0.15, gt=0.0, lt=1.0)
    """Fraction of real text tokens selected for MLM."""
    mfm_probability: float = Field(0.15, gt=0.0, lt=1.0)
    """Fraction of tabular features / series days masked for MFM."""
    explain_method: Literal["integrated_gradients", "grad_x_input"] = "integrated_gradients"
    """Attribution method used by explanations."""
    ig_steps: int = Field(32, gt=0)
    """Integration steps for integrated gradients."""
    heads: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Task heads to attach for fine-tuning: registered head name -> its keyword arguments."""

    def to_finmm_config(
        self, vocab_size: int, tabular_schema: TabularSchema | dict[str, Any] | None = None
    ) -> FinMMConfig:
        """Build the model config; `vocab_size` comes from the fitted tokenizer, the schema from preprocessing."""
        if self.image_size % self.image_patch_size:
            raise ValueError(
                f"model.image_size {self.image_size} is not a multiple of "
                f"model.image_patch_size {self.image_patch_size}"
            )
        if tabular_schema is None:
            tabular_schema = TabularSchema()
        elif isinstance(tabular_schema, dict):
            tabular_schema = TabularSchema.model_validate(tabular_schema)
        return FinMMConfig.from_preset(
            self.preset,
            text={"vocab_size": vocab_size, "max_positions": self.max_text_positions},
            image={"image_size": self.image_size, "patch_size": self.image_patch_size},
            tabular=tabular_schema.model_dump(),
            series={"patch_len": self.series_patch_len, "max_len": self.series_max_len},
            encoder={
                "norm_placement": self.norm_placement,
                "dropout": self.dropout,
                "attention_dropout": self.dropout,
            },
            objectives={
                "mlm_weight": self.mlm_weight,
                "contrastive_weight": self.contrastive_weight,
                "mfm_weight": self.mfm_weight,
                "mlm_probability": self.mlm_probability,
                "mfm_probability": self.mfm_probability,
            },
            explain={"method": self.explain_method, "ig_steps": self.ig_steps},
            heads=self.heads,
        )
