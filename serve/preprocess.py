"""Request preprocessing without torch: one request -> one row of collate columns, with the same functions
training used (actors/*) and the bundle's fitted state. Task deployments import only this (no torch), so
their replicas start fast; serve/engine.py batches the rows and runs the model.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actors.chart import render_candlestick
from actors.image import ImageRejected, preprocess_image
from actors.series import SeriesRejected, SeriesState
from actors.settings import DataSection
from actors.tabular import TabularRejected, TabularState
from actors.text import TextRejected, encode_text, load_tokenizer
from actors.versions import check_bundle_tokenizer

PREPROCESSING_FILE = "preprocessing_state.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"
"""As model/bundle.py names them (not imported: it pulls in torch)."""

MODEL_DIR_ENV = "FINMM_MODEL_DIR"
CREDIT_DATASET = "lending_club"
"""The tabular data set whose features the credit endpoint serves (falls back to the first tabular one)."""
STOCK_DATASET = "stocknet"
"""The series data set whose fitted `SeriesState` the stock endpoint applies (falls back to the first one with
a series state)."""
NEWS_SEP = " [SEP] "
"""How StockNet joined a day's tweets in training (actors/sources/stocknet.py TWEET_SEP)."""


class InputError(ValueError):
    """A request the server refuses: HTTP `status` (400/422), a message and where (loc) it went wrong."""

    def __init__(self, message: str, loc: tuple = ("body",), status: int = 400):
        super().__init__(message)
        self.message, self.loc, self.status = message, tuple(loc), status

    def to_dict(self) -> dict:
        return {"status": self.status, "message": self.message, "loc": list(self.loc)}


def resolve_model_dir(configured: str | Path | None) -> Path:
    """`configured`, else $FINMM_MODEL_DIR, else artifacts/finetune/latest (symlink resolved)."""
    path = Path(configured or os.environ.get(MODEL_DIR_ENV) or "artifacts/finetune/latest")
    if not (path / WEIGHTS_FILE).exists():
        raise FileNotFoundError(
            f"no model to serve: {path} has no {WEIGHTS_FILE}. Run `finmm finetune` first (it writes "
            f"artifacts/finetune/latest), or pass a save_pretrained folder with --model-dir / serve.model_dir."
        )
    return path.resolve()


def decode_image(data: str | None, data_settings: DataSection, loc: tuple) -> np.ndarray | None:
    """Base64 PNG/JPEG -> (3, H, W) float32 via actors.image; None passes through. Raises InputError (400)."""
    if data is None:
        return None
    if len(data) > data_settings.image.max_bytes * 4 // 3 + 4:
        raise InputError("image over max_bytes", loc)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("image is not valid base64", loc) from None
    try:
        return preprocess_image(raw, data_settings.image)
    except ImageRejected as exc:
        raise InputError(exc.reason if hasattr(exc, "reason") else str(exc), loc) from None


@dataclass
class Row:
    """One preprocessed request: collate columns (one value each), its tabular data set, and token strings."""

    columns: dict[str, Any]
    dataset: str | None = None
    tokens: list[str] | None = None


@dataclass
class Query:
    """What one request asks of a backbone forward: its row, the heads to read (all from the same forward),
    and optionally the head whose output is attributed to the inputs (`target`: its class; None: argmax)."""

    row: Row
    heads: tuple[str, ...]
    explain: str | None = None
    target: int | None = None


class Preprocessor:
    """The bundle's preprocessing state, applied to one request at a time (same functions as training)."""

    def __init__(self, model_dir: Path):
        state = json.loads((model_dir / PREPROCESSING_FILE).read_text())
        self.layout_dict: dict = state["layout"]
        """actors.collate.BatchLayout as a dict (the class is not imported here: it pulls in torch)."""
        self.data = DataSection.model_validate(state.get("data", {}))
        self.datasets: dict[str, dict] = state.get("datasets", {})
        check_bundle_tokenizer(model_dir, state)  # the tokenizer.json the model was trained with
        self.tokenizer = load_tokenizer(model_dir / TOKENIZER_FILE, self.data.text.max_length)
        self.tabular: dict[str, TabularState] = {}
        for name, ds in self.datasets.items():
            if ds.get("tabular"):
                self.tabular[name] = TabularState.from_dict(ds["tabular"])  # extra keys (version, ...) ignored
        self.series: SeriesState = self._series_state()
        """The stock endpoint's series standardisation, as the training shards were standardised."""
        tabular_in_layout = [b["dataset"] for b in self.layout_dict.get("tabular", [])]
        self.tasks: dict[str, dict] = state.get("tasks", {})
        """The trained tasks' registry entries, classes and declared fields (cluster.trainer.served_tasks)."""
        credit = self.tasks.get("credit_risk", {}).get("datasets")
        served = [d for d in credit if d in tabular_in_layout] if credit is not None else tabular_in_layout
        self.credit_dataset = CREDIT_DATASET if CREDIT_DATASET in served else (served[0] if served else None)
        """The credit endpoint's default data set."""
        self.credit_datasets: list[str] = (served if credit is not None else
                                           [self.credit_dataset] if self.credit_dataset else [])
        """The tabular data sets the credit endpoint serves: those the credit_risk task trained on (a bundle
        without task entries: the default one alone, as before); a request names one when there are several."""
        config_path = model_dir / "config.json"
        self._heads: set[str] | None = (set(json.loads(config_path.read_text()).get("heads", {}))
                                        if config_path.exists() else None)

    def _series_state(self) -> SeriesState:
        """`datasets[STOCK_DATASET]["series"]` of the bundle (else the first data set's series state) as a
        `SeriesState`. A bundle without one, or whose manifest predates the fitted state (no means/stds),
        gets the identity: no standardisation, as its model was trained."""
        series = {name: ds["series"] for name, ds in self.datasets.items() if ds.get("series")}
        chosen = series.get(STOCK_DATASET) or next(iter(series.values()), None)
        return SeriesState.from_dict(chosen) if chosen else SeriesState.identity(self.data.series)

    def heads(self) -> set[str] | None:
        """The bundle's task heads (from its config.json), or None when the folder has no config."""
        return self._heads

    # ----------------------------------------------------------------------------------- features
    def credit_feature_sets(self) -> list[dict] | dict[str, list[dict]]:
        """The credit endpoint's features: one data set's list (`credit_features`), or {data set: its list}
        when the bundle serves several (the request then names its data set)."""
        if len(self.credit_datasets) <= 1:
            return self.credit_features()
        return {d: self.credit_features(d) for d in self.credit_datasets}

    def credit_features(self, dataset: str | None = None) -> list[dict]:
        """The served credit model's features: [{"name", "column", "kind", "description"}] (prefix dropped)."""
        dataset = dataset or self.credit_dataset
        state = self.tabular.get(dataset) if dataset else None
        if state is None:
            return []
        out = []
        for col, mean, std in zip(state.numeric_columns, state.means, state.stds, strict=False):
            out.append({"name": col.removeprefix("num__"), "column": col, "kind": "numeric",
                        "description": f"numeric; training mean {mean:.4g}, std {std:.4g}; null = missing"})
        for col, vocab in zip(state.categorical_columns, state.vocabularies, strict=False):
            known = ", ".join(list(vocab)[:20]) + (", ..." if len(vocab) > 20 else "")
            out.append({"name": col.removeprefix("cat__"), "column": col, "kind": "categorical",
                        "description": f"categorical; known values: {known}; others map to unknown"})
        return out

    # ------------------------------------------------------------------------------------- pieces
    def _text(self, text: str, loc: tuple) -> tuple[dict, list[str]]:
        try:
            enc = encode_text(self.tokenizer, text)
        except TextRejected as exc:
            raise InputError(str(exc) or "empty text", loc, 422) from None
        ids = enc["input_ids"]
        return {"input_ids": ids}, [self.tokenizer.id_to_token(int(i)) or "[UNK]" for i in ids]

    def text_row(self, text: str, loc: tuple = ("body", "text")) -> Row:
        cols, tokens = self._text(text, loc)
        return Row(cols, None, tokens)

    def credit_row(self, features: dict[str, Any], text: str | None, image_b64: str | None,
                   dataset: str | None = None) -> Row:
        dataset = dataset or self.credit_dataset
        if dataset is None:
            raise InputError("the served model has no tabular (credit) features", ("body",), 422)
        if dataset not in self.credit_datasets:
            raise InputError(f"the credit model does not serve data set {dataset!r}; it serves "
                             f"{', '.join(self.credit_datasets)}", ("body", "dataset"), 422)
        state = self.tabular[dataset]
        record = {f"num__{k}" if f"num__{k}" in state.numeric_columns else f"cat__{k}": v
                  for k, v in features.items() if v is not None}
        try:
            tab = state.transform_one(record)
        except TabularRejected:
            raise InputError("every applicant feature is missing", ("body", "features"), 422) from None
        cols: dict[str, Any] = {k: tab[k] for k in ("tab_numeric", "tab_numeric_missing", "tab_categorical")}
        tokens = None
        if text is not None:
            t, tokens = self._text(text, ("body", "text"))
            cols.update(t)
        pixels = decode_image(image_b64, self.data, ("body", "image"))
        if pixels is not None:
            cols["pixel_values"] = pixels.ravel()
        return Row(cols, dataset, tokens)

    def stock_row(self, bars: list[list[float]], texts: list[str] | None, chart_b64: str | None) -> Row:
        s = self.data.series
        try:
            values, mask = self.series.features_from_bars(np.asarray(bars, dtype=np.float64))
        except SeriesRejected:
            raise InputError("no valid price bar in the window (prices must be positive)",
                             ("body", "bars"), 422) from None
        cols: dict[str, Any] = {"series_values": values.ravel(), "series_mask": mask}
        pixels = decode_image(chart_b64, self.data, ("body", "chart_image"))
        if pixels is None:  # draw it as training did: the chart_days bars before the prediction day
            window = np.asarray(bars, dtype=np.float64)[-s.chart_days:]
            if len(window) < s.chart_days:
                window = np.vstack([np.full((s.chart_days - len(window), 5), np.nan), window])
            pixels = preprocess_image(render_candlestick(window, size=self.data.image.image_size), self.data.image)
        cols["pixel_values"] = pixels.ravel()
        tokens = None
        if texts:
            t, tokens = self._text(NEWS_SEP.join(texts), ("body", "texts"))
            cols.update(t)
        return Row(cols, None, tokens)


def risk_grade(p_default: float) -> str:
    """A-G bands by probability of default: A < 5% <= B < 10% <= C < 15% <= D < 20% <= E < 30% <= F < 40% <= G."""
    for grade, upper in zip("ABCDEF", (0.05, 0.10, 0.15, 0.20, 0.30, 0.40), strict=True):
        if p_default < upper:
            return grade
    return "G"
