"""Build models from the `model:` settings section (what trainers call)."""

from __future__ import annotations

from typing import Any

from .minilm_init import init_from_minilm
from .modeling import FinMMModel
from .pretraining import FinMMForPretraining
from .settings import ModelSection, TabularSchema
from .task import FinMMForTask


def build_model(
    section: ModelSection,
    vocab_size: int,
    tabular_schema: TabularSchema | dict[str, Any] | None = None,
    kind: str = "pretraining",
    image_size: int = 64,
) -> FinMMModel | FinMMForPretraining | FinMMForTask:
    """kind: "backbone" (FinMMModel), "pretraining" (FinMMForPretraining) or "task" (FinMMForTask, heads from
    section.heads). With section.init_from_minilm and the small preset, the text path and encoder start from
    all-MiniLM-L6-v2. `image_size` is data.image.image_size (the prepared images' side, `BatchLayout.image_size`)."""
    classes = {"backbone": FinMMModel, "pretraining": FinMMForPretraining, "task": FinMMForTask}
    if kind not in classes:
        raise ValueError(f"kind must be one of {sorted(classes)}, got {kind!r}")
    config = section.to_finmm_config(vocab_size, tabular_schema, image_size=image_size)
    model = classes[kind](config)
    if section.init_from_minilm:
        if section.preset != "small":
            raise ValueError("model.init_from_minilm needs model.preset: small (MiniLM-L6-H384 sizes)")
        init_from_minilm(model if kind == "backbone" else model.finmm)
    return model
