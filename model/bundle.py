"""One folder with everything serving needs: config.json + model.safetensors (weights), tokenizer.json,
preprocessing_state.json. Loading reads safetensors only and never unpickles."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from .config import FinMMConfig
from .modeling import FinMMModel
from .pretraining import FinMMForPretraining
from .task import FinMMForTask

TOKENIZER_FILE = "tokenizer.json"
PREPROCESSING_FILE = "preprocessing_state.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_CLASSES: dict[str, type[PreTrainedModel]] = {
    c.__name__: c for c in (FinMMModel, FinMMForPretraining, FinMMForTask)
}


@dataclass
class Bundle:
    model: PreTrainedModel
    """FinMMModel, FinMMForTask or FinMMForPretraining (from config.architectures), in eval mode."""
    config: FinMMConfig
    tokenizer_path: Path | None
    """tokenizer.json of the bundle, if one was saved."""
    preprocessing_state: dict[str, Any] | None
    """The fitted preprocessing state (scalers, vocabularies, schema) as saved."""

    def tokenizer(self):
        """The bundle's tokenizer as a transformers fast tokenizer (MiniLM special tokens)."""
        from transformers import PreTrainedTokenizerFast

        if self.tokenizer_path is None:
            raise FileNotFoundError("this bundle has no tokenizer.json")
        return PreTrainedTokenizerFast(
            tokenizer_file=str(self.tokenizer_path),
            pad_token="[PAD]",
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
        )


def save_bundle(
    folder: str | Path,
    model: PreTrainedModel,
    tokenizer_json_path: str | Path | None = None,
    preprocessing_state: dict[str, Any] | None = None,
) -> Path:
    """Write model (safetensors) + config, copy tokenizer.json and dump the preprocessing state to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if not (folder / WEIGHTS_FILE).exists():
        raise RuntimeError(f"save_pretrained wrote no {WEIGHTS_FILE} in {folder}")
    if tokenizer_json_path is not None:
        shutil.copyfile(tokenizer_json_path, folder / TOKENIZER_FILE)
    if preprocessing_state is not None:
        (folder / PREPROCESSING_FILE).write_text(json.dumps(preprocessing_state, indent=2, sort_keys=True))
    return folder


def load_model(folder: str | Path, model_class: type[PreTrainedModel] | None = None) -> PreTrainedModel:
    """Load weights from safetensors only; a folder holding only pickled weights is refused."""
    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).exists() and not (folder / f"{WEIGHTS_FILE}.index.json").exists():
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_FILE}; finmm never loads pickled weights")
    config = FinMMConfig.from_pretrained(folder)
    if model_class is None:
        arch = (config.architectures or ["FinMMModel"])[0]
        if arch not in MODEL_CLASSES:
            raise ValueError(f"{folder}: unknown architecture {arch!r}; expected one of {sorted(MODEL_CLASSES)}")
        model_class = MODEL_CLASSES[arch]
    return model_class.from_pretrained(folder, use_safetensors=True).eval()


def load_bundle(folder: str | Path) -> Bundle:
    folder = Path(folder)
    model = load_model(folder)
    tok = folder / TOKENIZER_FILE
    prep = folder / PREPROCESSING_FILE
    state = json.loads(prep.read_text()) if prep.exists() else None
    return Bundle(
        model=model, config=model.config, tokenizer_path=tok if tok.exists() else None, preprocessing_state=state
    )
