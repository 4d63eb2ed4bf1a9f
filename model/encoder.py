"""Fusion encoder: L Transformer blocks over the concatenated multimodal sequence (nanoGPT style).

Attention is `F.scaled_dot_product_attention` with a boolean key-padding mask, so a padded key never
changes any other token's output. Module names follow BERT's so MiniLM's layers copy one to one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import EncoderConfig


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d = cfg.hidden_size
        self.n_head = cfg.num_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.output = nn.Linear(d, d)
        self.attn_dropout = cfg.attention_dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()  # batch, sequence length, hidden size D
        hs = C // self.n_head
        q = self.query(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.key(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = self.value(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, T) True = attend to this key
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, D)
        return self.resid_dropout(self.output(y))  # (B, T, D)


class MLP(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.intermediate = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.approximate = "tanh" if cfg.hidden_act == "gelu_tanh" else "none"
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.intermediate(x), approximate=self.approximate)  # (B, T, 4D)
        return self.dropout(self.output(h))  # (B, T, D)


class Block(nn.Module):
    """post: x = LN1(x + attn(x)); x = LN2(x + mlp(x))  (BERT).  pre: x = x + attn(LN1(x)); x = x + mlp(LN2(x))."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.pre = cfg.norm_placement == "pre"
        self.attention = SelfAttention(cfg)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg)
        self.output_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pre:
            x = x + self.attention(self.attention_norm(x), mask)  # (B, T, D)
            x = x + self.mlp(self.output_norm(x))  # (B, T, D)
        else:
            x = self.attention_norm(x + self.attention(x, mask))  # (B, T, D)
            x = self.output_norm(x + self.mlp(x))  # (B, T, D)
        return x


class FusionEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.num_layers)])
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.norm_placement == "pre" else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D) embedded sequence, mask: (B, T) bool key-padding mask
        for block in self.layers:
            x = block(x, mask)  # (B, T, D)
        if self.final_norm is not None:
            x = self.final_norm(x)  # (B, T, D)
        return x
