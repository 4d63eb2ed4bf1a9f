"""Image-text contrastive loss (CLIP / open_clip): symmetric InfoNCE with a learned temperature.

Under data parallelism every rank gathers the features of all ranks (torch.distributed all_gather; the
local shard keeps its gradient, the others are constants, as open_clip's default) and computes the full
N x N loss, so every rank's loss value equals the single-process loss over the concatenated batch.
Ranks may hold different numbers of pairs (sizes are exchanged first; 0 is allowed), but every rank must
call it on every step, since it runs collectives.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """(n_local, P) -> (N, P): every rank's features in rank order; the local slice keeps its gradient."""
    if not _distributed():
        return features
    world, rank = dist.get_world_size(), dist.get_rank()
    n = torch.tensor([features.shape[0]], device=features.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s.item()) for s in sizes]
    padded = features.new_zeros((max(sizes), features.shape[1]))  # (n_max, P)
    padded[: features.shape[0]] = features.detach()
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    parts = [g[:s] for g, s in zip(gathered, sizes, strict=True)]
    parts[rank] = features  # local shard with gradient
    return torch.cat(parts, dim=0)  # (N, P)


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    max_log_scale: float = math.log(100.0),
) -> torch.Tensor | None:
    """Symmetric InfoNCE. image/text features (n, P), row i of each is a pair; logit_scale is the log inverse
    temperature (clamped to [0, max_log_scale]). Features are L2-normalised here. Gathers across ranks
    when torch.distributed is initialised. Returns a scalar, or None when no rank has a pair."""
    image = gather_features(F.normalize(image_features.float(), dim=-1))  # (N, P)
    text = gather_features(F.normalize(text_features.float(), dim=-1))  # (N, P)
    if image.shape[0] == 0:
        return None
    scale = logit_scale.float().reshape(-1)[0].clamp(0.0, max_log_scale).exp()
    logits_per_image = scale * image @ text.T  # (N, N)
    labels = torch.arange(image.shape[0], device=image.device)  # (N,) pair i matches column i
    return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels))


class ContrastiveHead(nn.Module):
    """Linear projections of pooled image / text states into the shared space, plus the learned log scale."""

    def __init__(self, hidden_size: int, projection_dim: int, logit_scale_init: float):
        super().__init__()
        self.image_projection = nn.Linear(hidden_size, projection_dim, bias=False)
        self.text_projection = nn.Linear(hidden_size, projection_dim, bias=False)
        # shape (1,), not 0-dim: DeepSpeed broadcasts parameters as bytes and cannot view a 0-dim tensor
        self.logit_scale = nn.Parameter(torch.full((1,), float(logit_scale_init)))
