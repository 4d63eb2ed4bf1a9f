"""FinMMModel: per-modality embedders -> one fused sequence -> Transformer encoder.

    z0 = [CLS; x_text E; x_image E; x_tab E; x_series E] + P + M      (M = modality-type embedding)
    z_L = Block_L(...Block_1(z0))

Sequence layout (fixed order, every modality key in the batch contributes a segment, absent samples are
masked out): position 0 is the CLS slot; when a sample has text, its own tokenizer [CLS] (text position 0)
*is* the CLS slot, so a text-only input is exactly BERT/MiniLM's sequence; a sample without text gets a
learned CLS embedding there. Text token i >= 1 sits at sequence position i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .config import MODALITIES, FinMMConfig
from .embedders import EMBEDDERS, ImageEmbedder, SeriesEmbedder, TabularEmbedder
from .encoder import FusionEncoder

Embedded = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""modality -> (tokens (B, T_m, D) before type embedding and LayerNorm, key-padding mask (B, T_m) bool)."""


@dataclass
class FinMMOutput(ModelOutput):
    """A ModelOutput (a dict underneath), so wrappers such as DeepSpeed ZeRO-3 find the tensors in it and
    can hook the backward pass; a plain dataclass hides them."""

    hidden_states: torch.Tensor | None = None
    """(B, T, D) final hidden states of the fused sequence."""
    mask: torch.Tensor | None = None
    """(B, T) bool, True where a real token sits."""
    segments: dict[str, slice] | None = None
    """Which slice of T belongs to which modality; "cls" is slice(0, 1). The text slice starts at 1 (its
    [CLS] is the CLS slot), so text position i maps to sequence position i."""
    pooled: torch.Tensor | None = None
    """(B, D) hidden state of the CLS slot."""


class FinMMPreTrainedModel(PreTrainedModel):
    config_class = FinMMConfig
    config: FinMMConfig
    base_model_prefix = "finmm"
    main_input_name = "batch"
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        std = self.config.encoder.initializer_range
        if isinstance(module, FinMMModel):
            init.normal_(module.cls_embedding, std=std)
        elif isinstance(module, ImageEmbedder):
            init.normal_(module.position_embeddings, std=std)
        elif isinstance(module, SeriesEmbedder):
            init.normal_(module.position_embeddings, std=std)
            init.normal_(module.mask_embedding, std=std)
        elif isinstance(module, TabularEmbedder):
            for p in (
                module.missing_embeddings,
                module.feature_embeddings,
                module.mask_embedding,
            ):
                init.normal_(p, std=std)


class FinMMModel(FinMMPreTrainedModel):
    """The backbone. `forward(batch)` = `fuse(embed(batch))`; the split lets objectives and explanations
    edit the embedded tokens (feature masking, integrated-gradient paths) before fusion."""

    def __init__(self, config: FinMMConfig):
        super().__init__(config)
        d, eps = config.encoder.hidden_size, config.encoder.layer_norm_eps
        self.embedders = nn.ModuleDict({m: EMBEDDERS[m](config) for m in MODALITIES})
        self.modality_embeddings = nn.Embedding(len(MODALITIES), d)
        self.embed_norms = nn.ModuleDict({m: nn.LayerNorm(d, eps=eps) for m in MODALITIES})
        self.cls_embedding = nn.Parameter(torch.zeros(d))
        self.embed_dropout = nn.Dropout(config.encoder.dropout)
        self.encoder = FusionEncoder(config.encoder)
        self.post_init()

    def embed(self, batch: dict[str, dict[str, torch.Tensor]], **embedder_kwargs: dict) -> Embedded:
        """Run every embedder whose modality key is in the batch. embedder_kwargs: modality -> extra kwargs
        (e.g. {"tabular": {"mfm_mask": ...}})."""
        out = {}
        for m in MODALITIES:
            if batch.get(m) is not None:
                out[m] = self.embedders[m](batch[m], **embedder_kwargs.get(m, {}))  # (B, T_m, D), (B, T_m)
        if not out:
            raise ValueError(f"batch has none of the modalities {MODALITIES}")
        return out

    def fuse(self, embedded: Embedded) -> FinMMOutput:
        """z0 = [CLS; LN_m(x_m + M_m) ...] -> encoder."""
        B = next(iter(embedded.values()))[0].shape[0]
        ref = next(iter(embedded.values()))[0]
        cls = self.cls_embedding.to(ref.dtype).expand(B, 1, -1)  # (B, 1, D) learned CLS
        cls_mask = torch.ones(B, 1, dtype=torch.bool, device=ref.device)  # (B, 1) always attended
        xs, masks, segments, pos = [cls], [cls_mask], {"cls": slice(0, 1)}, 1
        for i, m in enumerate(MODALITIES):
            if m not in embedded:
                continue
            x, mask = embedded[m]  # (B, T_m, D), (B, T_m)
            x = self.embed_norms[m](x + self.modality_embeddings.weight[i])  # (B, T_m, D)
            if m == "text":
                has_text = mask[:, :1]  # (B, 1) its [CLS] is real iff the sample has text
                xs[0] = torch.where(has_text[..., None], x[:, :1], cls)  # (B, 1, D) text [CLS] or learned
                x, mask = x[:, 1:], mask[:, 1:]  # (B, T_text - 1, D), (B, T_text - 1)
            xs.append(x)
            masks.append(mask)
            segments[m] = slice(pos, pos + x.shape[1])
            pos += x.shape[1]
        z = torch.cat(xs, dim=1)  # (B, T, D)
        mask = torch.cat(masks, dim=1)  # (B, T)
        z = self.embed_dropout(z)  # (B, T, D)
        h = self.encoder(z, mask)  # (B, T, D)
        return FinMMOutput(hidden_states=h, mask=mask, segments=segments, pooled=h[:, 0])  # pooled: (B, D)

    def forward(self, batch: dict[str, dict[str, torch.Tensor]]) -> FinMMOutput:
        return self.fuse(self.embed(batch))

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.embedders["text"].word_embeddings
