"""Per-modality embedders: raw batch entry -> (B, T_m, D) tokens and a (B, T_m) key-padding mask.

Tokens come out *before* the modality-type embedding and the per-modality embedding LayerNorm, which
the model applies (z0_m = LN_m(x_m E_m + P_m + M_m)), so the text path is exactly BERT's embeddings.
Masks are bool, True = a real token that others may attend to.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from rtdl_num_embeddings import LinearEmbeddings, PiecewiseLinearEmbeddings

from .config import FinMMConfig


class TextEmbedder(nn.Module):
    """Word + learned position embeddings (BERT layout: names match MiniLM's for the copy)."""

    def __init__(self, config: FinMMConfig):
        super().__init__()
        t, d = config.text, config.encoder.hidden_size
        self.word_embeddings = nn.Embedding(t.vocab_size, d, padding_idx=t.pad_token_id)
        self.position_embeddings = nn.Embedding(t.max_positions, d)

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        B, T = ids.shape
        pos = torch.arange(T, device=ids.device)  # (T,)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)  # (B, T, D)
        return x, mask.bool()  # (B, T, D), (B, T)

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)  # (B, T) -> (B, T, D)


class ImageEmbedder(nn.Module):
    """ViT patch embedding: Conv2d(kernel = stride = patch) + learned patch positions."""

    def __init__(self, config: FinMMConfig):
        super().__init__()
        im, d = config.image, config.encoder.hidden_size
        if im.image_size % im.patch_size:
            raise ValueError(f"image_size {im.image_size} is not a multiple of patch_size {im.patch_size}")
        self.proj = nn.Conv2d(im.num_channels, d, kernel_size=im.patch_size, stride=im.patch_size)
        self.position_embeddings = nn.Parameter(torch.zeros(im.num_patches, d))

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels, present = inputs["pixel_values"], inputs["present"]
        x = self.proj(pixels)  # (B, D, H/p, W/p)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        x = x + self.position_embeddings  # (B, N, D)
        mask = present.bool()[:, None].expand(-1, x.shape[1])  # (B, N)
        return x, mask


class TabularEmbedder(nn.Module):
    """One token per feature of the union feature space; a row attends only to its own data set's features
    (`feature_mask`). Numeric i: piecewise-linear embedding over its fitted quantile bins (rtdl, version B:
    linear term + PLE; Gorishniy et al. 2022), or a linear embedding when no bins are configured; a missing
    value is replaced by that feature's learned "missing" token. Categorical j: its own table (one shared
    nn.Embedding with per-feature offsets), where id 0 = unseen and id 1 = missing. Every token also gets its
    feature embedding."""

    def __init__(self, config: FinMMConfig):
        super().__init__()
        tab, d = config.tabular, config.encoder.hidden_size
        if len(tab.categorical_cardinalities) != len(tab.categorical_features):
            raise ValueError("tabular.categorical_cardinalities must have one entry per categorical feature")
        if tab.numeric_bins and len(tab.numeric_bins) != len(tab.numeric_features):
            raise ValueError("tabular.numeric_bins must have one list of edges per numeric feature (or be empty)")
        self.num_numeric, self.num_categorical = len(tab.numeric_features), len(tab.categorical_features)
        n = max(self.num_numeric, 1)
        if tab.numeric_bins:
            with torch.device("cpu"), warnings.catch_warnings():  # not on transformers' meta device: rtdl
                warnings.filterwarnings("ignore", message=".*just two bin edges.*")  # computes buffers from the bins
                bins = [torch.tensor(b, dtype=torch.float32) for b in tab.numeric_bins]
                self.numeric = PiecewiseLinearEmbeddings(bins, d, activation=False, version="B")
        else:
            self.numeric = LinearEmbeddings(n, d)
        self.missing_embeddings = nn.Parameter(torch.zeros(n, d))
        offsets = [0]
        for c in tab.categorical_cardinalities:
            offsets.append(offsets[-1] + c)
        self.register_buffer("category_offsets", torch.tensor(offsets[:-1], dtype=torch.long), persistent=True)
        self.category_embeddings = nn.Embedding(max(offsets[-1], 1), d)
        self.feature_embeddings = nn.Parameter(torch.zeros(max(tab.num_features, 1), d))
        self.mask_embedding = nn.Parameter(torch.zeros(d))  # replaces a feature's value under MFM

    def embed_values(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The value part of each feature token, (B, F, D), before feature embeddings and masking."""
        parts = []
        if self.num_numeric:
            v = inputs["numeric"].float()  # (B, F_num) standardised
            miss = inputs["numeric_missing"].bool()  # (B, F_num)
            x_num = self.numeric(torch.where(miss, torch.zeros_like(v), v))  # (B, F_num, D)
            x_num = torch.where(miss[..., None], self.missing_embeddings.to(x_num.dtype), x_num)  # (B, F_num, D)
            parts.append(x_num)
        if self.num_categorical:
            cat = inputs["categorical"] + self.category_offsets  # (B, F_cat)
            parts.append(self.category_embeddings(cat))  # (B, F_cat, D)
        dtype = parts[-1].dtype
        return torch.cat([p.to(dtype) for p in parts], dim=1)  # (B, F, D)

    def forward(
        self, inputs: dict[str, torch.Tensor], mfm_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """mfm_mask: optional (B, F) bool; True features have their value replaced by the mask embedding."""
        if not (self.num_numeric or self.num_categorical):
            raise ValueError("batch has a tabular entry but config.tabular declares no features")
        x = self.embed_values(inputs)  # (B, F, D)
        if mfm_mask is not None:
            x = torch.where(mfm_mask[..., None], self.mask_embedding.to(x.dtype), x)  # (B, F, D)
        x = x + self.feature_embeddings[: x.shape[1]].to(x.dtype)  # (B, F, D)
        mask = inputs["present"].bool()[:, None].expand(-1, x.shape[1])  # (B, F)
        if "feature_mask" in inputs:
            mask = mask & inputs["feature_mask"].bool()  # (B, F): only the row's own features are attended
        return x, mask


def patch_series(values: torch.Tensor, mask: torch.Tensor, patch_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, C) days + (B, L) mask -> (B, N, patch_len*C) patches + (B, N) mask; N = ceil(L / patch_len).
    Masked days are zeroed; the tail is padded with masked days; a patch is real if any of its days is."""
    B, L, C = values.shape
    values = values * mask[..., None].to(values.dtype)  # (B, L, C)
    pad = (-L) % patch_len
    if pad:
        values = F.pad(values, (0, 0, 0, pad))  # (B, L', C)
        mask = F.pad(mask, (0, pad))  # (B, L')
    N = values.shape[1] // patch_len
    patches = values.reshape(B, N, patch_len * C)  # (B, N, p*C)
    patch_mask = mask.reshape(B, N, patch_len).any(-1)  # (B, N)
    return patches, patch_mask


class SeriesEmbedder(nn.Module):
    """Patches of the OHLCV window (patch_len days) -> Linear -> tokens, plus learned patch positions."""

    def __init__(self, config: FinMMConfig):
        super().__init__()
        s, d = config.series, config.encoder.hidden_size
        self.patch_len = s.patch_len
        self.proj = nn.Linear(s.patch_len * len(s.channels), d)
        self.position_embeddings = nn.Parameter(torch.zeros(s.max_patches, d))
        self.mask_embedding = nn.Parameter(torch.zeros(d))  # replaces a patch's values under MFM

    def forward(
        self, inputs: dict[str, torch.Tensor], mfm_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """mfm_mask: optional (B, N) bool over patches; True patches are replaced by the mask embedding."""
        patches, mask = patch_series(inputs["values"], inputs["mask"].bool(), self.patch_len)  # (B, N, p*C), (B, N)
        N = patches.shape[1]
        if N > self.position_embeddings.shape[0]:
            raise ValueError(f"series of {N} patches exceeds series.max_len / patch_len")
        x = self.proj(patches)  # (B, N, D)
        if mfm_mask is not None:
            x = torch.where(mfm_mask[..., None], self.mask_embedding.to(x.dtype), x)  # (B, N, D)
        x = x + self.position_embeddings[:N]  # (B, N, D)
        return x, mask


EMBEDDERS: dict[str, type[nn.Module]] = {
    "text": TextEmbedder,
    "image": ImageEmbedder,
    "tabular": TabularEmbedder,
    "series": SeriesEmbedder,
}
