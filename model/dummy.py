"""Random batches that follow the batch contract, for tests, benchmarks and smoke runs."""

from __future__ import annotations

import torch

from .config import MODALITIES, FinMMConfig


def dummy_batch(
    config: FinMMConfig,
    batch_size: int = 4,
    modalities: tuple[str, ...] = MODALITIES,
    text_len: int = 12,
    series_len: int = 10,
    generator: torch.Generator | None = None,
    ragged: bool = True,
) -> dict[str, dict[str, torch.Tensor]]:
    """A batch with the given modality keys. With ragged=True, texts and series have varied lengths (padding)
    and sample 0 lacks every non-text modality while the last sample lacks text, so presence varies."""
    g, B = generator, batch_size
    batch: dict[str, dict[str, torch.Tensor]] = {}
    if "text" in modalities:
        t = config.text
        ids = torch.randint(1000, min(t.vocab_size, 30000), (B, text_len), generator=g)
        lengths = torch.randint(3, text_len + 1, (B,), generator=g) if ragged else torch.full((B,), text_len)
        mask = torch.arange(text_len)[None] < lengths[:, None]  # (B, T)
        ids[:, 0] = t.cls_token_id
        ids[torch.arange(B), lengths - 1] = t.sep_token_id
        if ragged and B > 1:
            mask[-1] = False  # last sample has no text
        ids = torch.where(mask, ids, torch.full_like(ids, t.pad_token_id))
        batch["text"] = {"input_ids": ids, "attention_mask": mask.long()}
    present = torch.ones(B, dtype=torch.bool)
    if ragged and B > 1:
        present[0] = False
    if "image" in modalities:
        im = config.image
        px = torch.randn(B, im.num_channels, im.image_size, im.image_size, generator=g)
        batch["image"] = {"pixel_values": px, "present": present.clone()}
    if "tabular" in modalities:
        tab = config.tabular
        num = torch.randn(B, len(tab.numeric_features), generator=g)
        missing = torch.rand(B, len(tab.numeric_features), generator=g) < 0.2
        cat = (
            torch.stack([torch.randint(0, c, (B,), generator=g) for c in tab.categorical_cardinalities], 1)
            if (tab.categorical_cardinalities)
            else torch.zeros(B, 0, dtype=torch.long)
        )
        batch["tabular"] = {
            "numeric": num.masked_fill(missing, 0.0),
            "numeric_missing": missing,
            "categorical": cat,
            "feature_mask": torch.ones(B, tab.num_features, dtype=torch.bool),
            "present": present.clone(),
        }
    if "series" in modalities:
        C = len(config.series.channels)
        vals = 0.1 * torch.randn(B, series_len, C, generator=g)
        lengths = torch.randint(2, series_len + 1, (B,), generator=g) if ragged else torch.full((B,), series_len)
        mask = torch.arange(series_len)[None] >= (series_len - lengths[:, None])  # (B, L) left-padded window
        if ragged and B > 1:
            mask[0] = False
        batch["series"] = {"values": vals * mask[..., None], "mask": mask}
    return batch


def tiny_config(**overrides) -> FinMMConfig:
    """The `tiny` preset with a small tabular schema and small vocabulary, used by tests."""
    kw = dict(
        text={"vocab_size": 30600, "max_positions": 64},
        image={"image_size": 16, "patch_size": 8},
        tabular={
            "numeric_features": ["income", "debt_ratio", "age"],
            "categorical_features": ["sector", "region"],
            "categorical_cardinalities": [5, 3],
            "numeric_bins": [[-3.0, -1.0, 0.0, 1.0, 3.0]] * 3,
            "numeric_reference": [0.0, -0.5, 0.25],
            "categorical_reference": [2, 2],
        },
        series={"max_len": 32},
    )
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(kw.get(k), dict):
            kw[k] = {**kw[k], **v}
        else:
            kw[k] = v
    return FinMMConfig.from_preset("tiny", **kw)
