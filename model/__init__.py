"""finmm model package: a multimodal Transformer (text, image, tabular, OHLCV series) for finance.

Importing it registers the "finmm" model type with transformers' AutoConfig / AutoModel.
Imports only torch, transformers, safetensors, numpy, pydantic and the standard library.
"""

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

from .bundle import Bundle, load_bundle, load_model, save_bundle
from .config import MODALITIES, PRESETS, FinMMConfig
from .explain import Explanation, explain, reason_codes
from .factory import build_model
from .heads import HEADS, TaskHead, register_head
from .minilm_init import init_from_minilm
from .modeling import FinMMModel, FinMMOutput
from .pretraining import FinMMForPretraining
from .settings import ModelSection, TabularSchema
from .task import FinMMForTask

AutoConfig.register("finmm", FinMMConfig, exist_ok=True)
AutoModel.register(FinMMConfig, FinMMModel, exist_ok=True)
AutoModelForPreTraining.register(FinMMConfig, FinMMForPretraining, exist_ok=True)

__all__ = [
    "HEADS",
    "MODALITIES",
    "PRESETS",
    "Bundle",
    "Explanation",
    "FinMMConfig",
    "FinMMForPretraining",
    "FinMMForTask",
    "FinMMModel",
    "FinMMOutput",
    "ModelSection",
    "TabularSchema",
    "TaskHead",
    "build_model",
    "explain",
    "init_from_minilm",
    "load_bundle",
    "load_model",
    "reason_codes",
    "register_head",
    "save_bundle",
]
