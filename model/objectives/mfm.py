"""Masked feature modelling for tabular features and series days/patches.

Masked tokens have their value replaced by a learned mask embedding (their feature / position embedding
stays, so the model knows what is asked); the head regresses masked numeric values (MSE) and classifies
masked categories (cross-entropy).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def mask_positions(
    eligible: torch.Tensor, probability: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, T) bool eligible -> (B, T) bool chosen, each eligible position independently with `probability`."""
    u = torch.rand(eligible.shape, generator=generator, device=eligible.device)  # (B, T)
    return eligible & (u < probability)


def mfm_tabular_loss(
    numeric_pred: torch.Tensor,
    numeric_target: torch.Tensor,
    numeric_mask: torch.Tensor,
    categorical_logits: list[torch.Tensor],
    categorical_target: torch.Tensor,
    categorical_mask: torch.Tensor,
) -> torch.Tensor | None:
    """numeric_pred/target/mask (B, F_num); categorical_logits: one (B, K_j) per feature; target/mask (B, F_cat).
    Returns MSE over masked numerics + mean CE over masked categories (each term only if any is masked),
    or None if nothing was masked."""
    terms = []
    if numeric_mask.any():
        terms.append(F.mse_loss(numeric_pred[numeric_mask].float(), numeric_target[numeric_mask].float()))
    if categorical_mask.any():
        ce = [
            F.cross_entropy(
                logits[categorical_mask[:, j]].float(), categorical_target[categorical_mask[:, j], j], reduction="sum"
            )
            for j, logits in enumerate(categorical_logits)
            if categorical_mask[:, j].any()
        ]
        terms.append(torch.stack(ce).sum() / categorical_mask.sum())
    return sum(terms) if terms else None


def mfm_series_loss(
    pred: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor, patch_mask: torch.Tensor
) -> torch.Tensor | None:
    """pred/target (B, N, p*C); target_mask (B, N, p*C) real values; patch_mask (B, N) masked patches.
    MSE over the real values of masked patches, or None if nothing was masked."""
    sel = patch_mask[..., None] & target_mask  # (B, N, p*C)
    if not sel.any():
        return None
    return F.mse_loss(pred[sel].float(), target[sel].float())


class MFMHeads(nn.Module):
    """Prediction heads for masked tabular and series tokens."""

    def __init__(self, hidden_size: int, categorical_cardinalities: list[int], series_patch_dim: int):
        super().__init__()
        self.numeric = nn.Linear(hidden_size, 1)  # value of a numeric feature token
        self.cardinalities = list(categorical_cardinalities)
        self.categorical = nn.Linear(hidden_size, max(sum(self.cardinalities), 1))  # all features' classes
        self.series = nn.Linear(hidden_size, series_patch_dim)  # the p*C values of a series patch

    def tabular(self, h_num: torch.Tensor, h_cat: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """h_num (B, F_num, D), h_cat (B, F_cat, D) -> numeric (B, F_num), [logits (B, K_j) per feature]."""
        numeric = self.numeric(h_num).squeeze(-1)  # (B, F_num)
        logits, start = [], 0
        for j, k in enumerate(self.cardinalities):
            w, b = self.categorical.weight[start : start + k], self.categorical.bias[start : start + k]
            logits.append(F.linear(h_cat[:, j], w, b))  # (B, K_j)
            start += k
        return numeric, logits
