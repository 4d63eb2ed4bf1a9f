"""Pretraining objectives: pure functions (masking, losses) and their small prediction heads."""

from .contrastive import ContrastiveHead, contrastive_loss, gather_features
from .mfm import MFMHeads, mask_positions, mfm_series_loss, mfm_tabular_loss
from .mlm import MLMHead, mask_tokens, mlm_loss

__all__ = [
    "ContrastiveHead",
    "MFMHeads",
    "MLMHead",
    "contrastive_loss",
    "gather_features",
    "mask_positions",
    "mask_tokens",
    "mfm_series_loss",
    "mfm_tabular_loss",
    "mlm_loss",
]
