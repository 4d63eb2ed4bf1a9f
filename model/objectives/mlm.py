"""Masked language modelling (BERT): token masking, the loss, and the tied prediction head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

SPECIAL_IDS: tuple[int, ...] = (0, 100, 101, 102, 103)
"""[PAD], [UNK], [CLS], [SEP], [MASK] of the MiniLM tokenizer: never selected for masking."""


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    special_ids: Sequence[int] = SPECIAL_IDS,
    mask_token_id: int = 103,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select `probability` of the real, non-special tokens; of those 80% -> [MASK], 10% -> a random
    id drawn uniformly from the vocabulary (as BERT), 10% unchanged.
    Returns (masked_ids (B, T), labels (B, T) = original id or -100)."""
    device = input_ids.device
    special = torch.isin(input_ids, torch.tensor(list(special_ids), device=device))  # (B, T)
    candidates = attention_mask.bool() & ~special  # (B, T)
    u = torch.rand(input_ids.shape, generator=generator, device=device)  # (B, T)
    selected = candidates & (u < probability)  # (B, T)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))  # (B, T)
    action = torch.rand(input_ids.shape, generator=generator, device=device)  # (B, T)
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    random_ids = torch.randint(0, vocab_size, input_ids.shape, generator=generator, device=device)  # (B, T)
    masked = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    masked = torch.where(to_random, random_ids, masked)  # (B, T)
    return masked, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions whose label is not -100. logits (B, T, V), labels (B, T)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


class MLMHead(nn.Module):
    """BERT LM head: dense -> GELU -> LayerNorm -> decoder tied to the word embeddings (+ bias)."""

    def __init__(self, hidden_size: int, vocab_size: int, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        h = self.norm(F.gelu(self.dense(h)))  # (N, D)
        return F.linear(h, word_embeddings, self.bias)  # (N, V): decoder weight is the embedding table
