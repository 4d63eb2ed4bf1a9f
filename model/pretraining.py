"""FinMMForPretraining: MLM + image-text contrastive + masked feature modelling, weighted by config.

forward(batch) -> {"mlm", "contrastive", "mfm_tabular", "mfm_series", "loss"}; a term whose inputs are
absent from the batch (no text, no image-text pair, nothing masked) is left out of the dict and the total.
"""

from __future__ import annotations

import torch
from transformers import initialization as init

from .config import CATEGORY_MISSING_ID, FinMMConfig
from .embedders import patch_series
from .modeling import FinMMModel, FinMMPreTrainedModel
from .objectives.contrastive import ContrastiveHead, _distributed, contrastive_loss
from .objectives.mfm import MFMHeads, mask_positions, mfm_series_loss, mfm_tabular_loss
from .objectives.mlm import MLMHead, mask_tokens, mlm_loss

Batch = dict[str, dict[str, torch.Tensor]]


class FinMMForPretraining(FinMMPreTrainedModel):
    def __init__(self, config: FinMMConfig):
        super().__init__(config)
        d, obj = config.encoder.hidden_size, config.objectives
        self.finmm = FinMMModel(config)
        self.mlm_head = MLMHead(d, config.text.vocab_size, config.encoder.layer_norm_eps)
        self.contrastive = ContrastiveHead(d, obj.projection_dim or d, obj.logit_scale_init)
        self.mfm_heads = MFMHeads(
            d, config.tabular.categorical_cardinalities, config.series.patch_len * len(config.series.channels)
        )
        self.post_init()

    def _init_weights(self, module) -> None:
        super()._init_weights(module)
        if isinstance(module, ContrastiveHead):
            init.constant_(module.logit_scale, self.config.objectives.logit_scale_init)

    # ---------------------------------------------------------------- masking
    def _mask_batch(self, batch: Batch, g: torch.Generator | None) -> tuple[Batch, dict, dict]:
        cfg, obj = self.config, self.config.objectives
        batch, kwargs, targets = dict(batch), {}, {}
        if "text" in batch:
            text = dict(batch["text"])
            if "labels" not in text:
                text["input_ids"], text["labels"] = mask_tokens(
                    text["input_ids"],
                    text["attention_mask"],
                    cfg.text.vocab_size,
                    obj.mlm_probability,
                    g,
                    mask_token_id=cfg.text.mask_token_id,
                )
            batch["text"] = text
        if "tabular" in batch and cfg.tabular.num_features:
            tab = batch["tabular"]
            B, Fn = tab["present"].shape[0], len(cfg.tabular.numeric_features)
            eligible = tab["present"].bool()[:, None].expand(B, cfg.tabular.num_features).clone()  # (B, F)
            if "feature_mask" in tab:
                eligible &= tab["feature_mask"].bool()  # only the row's own data set's features
            eligible[:, :Fn] &= ~tab["numeric_missing"].bool()  # never ask for a missing value
            eligible[:, Fn:] &= tab["categorical"] != CATEGORY_MISSING_ID  # (B, F_cat)
            chosen = mask_positions(eligible, obj.mfm_probability, g)  # (B, F)
            kwargs["tabular"] = {"mfm_mask": chosen}
            targets["tabular"] = chosen
        if "series" in batch:
            s = batch["series"]
            patches, patch_mask = patch_series(
                s["values"], s["mask"].bool(), cfg.series.patch_len
            )  # (B, N, pC), (B, N)
            day_mask = (
                patch_series(
                    s["mask"][..., None].expand_as(s["values"]).float(), s["mask"].bool(), cfg.series.patch_len
                )[0]
                > 0
            )
            chosen = mask_positions(patch_mask, obj.mfm_probability, g)  # (B, N)
            kwargs["series"] = {"mfm_mask": chosen}
            targets["series"] = (patches, day_mask, chosen)
        return batch, kwargs, targets

    # ---------------------------------------------------------------- forward
    def forward(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """batch: the batch contract; text may carry precomputed "labels" (then input_ids are taken as already
        masked). Returns per-objective losses and their weighted sum "loss"."""
        obj = self.config.objectives
        masked, kwargs, targets = self._mask_batch(batch, generator)
        out = self.finmm.fuse(self.finmm.embed(masked, **kwargs))  # hidden (B, T, D)
        h, seg = out.hidden_states, out.segments
        losses: dict[str, torch.Tensor] = {}

        if "text" in masked:
            labels = masked["text"]["labels"]  # (B, T_text), position 0 = CLS slot
            sel = labels != -100  # (B, T_text)
            if sel.any():
                h_text = h[:, : labels.shape[1]]  # (B, T_text, D) text position i = sequence position i
                logits = self.mlm_head(h_text[sel], self.finmm.word_embeddings.weight)  # (n, V)
                losses["mlm"] = mlm_loss(logits[None], labels[sel][None])

        if "tabular" in targets:
            tab, chosen = masked["tabular"], targets["tabular"]
            Fn = len(self.config.tabular.numeric_features)
            h_tab = h[:, seg["tabular"]]  # (B, F, D)
            num_pred, cat_logits = self.mfm_heads.tabular(h_tab[:, :Fn], h_tab[:, Fn:])
            term = mfm_tabular_loss(
                num_pred, tab["numeric"], chosen[:, :Fn], cat_logits, tab["categorical"], chosen[:, Fn:]
            )
            if term is not None:
                losses["mfm_tabular"] = term

        if "series" in targets:
            patches, day_mask, chosen = targets["series"]
            pred = self.mfm_heads.series(h[:, seg["series"]])  # (B, N, p*C)
            term = mfm_series_loss(pred, patches, day_mask, chosen)
            if term is not None:
                losses["mfm_series"] = term

        if obj.contrastive_weight > 0:
            term = self._contrastive(batch)
            if term is not None:
                losses["contrastive"] = term

        weights = {
            "mlm": obj.mlm_weight,
            "contrastive": obj.contrastive_weight,
            "mfm_tabular": obj.mfm_weight,
            "mfm_series": obj.mfm_weight,
        }
        total = out.pooled.sum() * 0.0  # keeps the graph connected when no term applies
        for name, value in losses.items():
            total = total + weights[name] * value
        losses["loss"] = total
        return losses

    def _contrastive(self, batch: Batch) -> torch.Tensor | None:
        """Unimodal passes through the shared encoder for samples holding both text and image (unmasked text)."""
        has_pair = "text" in batch and "image" in batch
        if not has_pair and not _distributed():
            return None
        d = self.config.encoder.hidden_size
        ref = self.finmm.cls_embedding
        img_h, txt_h = ref.new_zeros(0, d), ref.new_zeros(0, d)
        if has_pair:
            text, image = batch["text"], batch["image"]
            pair = text["attention_mask"].bool()[:, 0] & image["present"].bool()  # (B,)
            if pair.any():
                txt = {"input_ids": text["input_ids"][pair], "attention_mask": text["attention_mask"][pair]}
                img = {"pixel_values": image["pixel_values"][pair], "present": image["present"][pair]}
                txt_h = self.finmm({"text": txt}).pooled  # (n, D)
                img_h = self.finmm({"image": img}).pooled  # (n, D)
        c = self.contrastive
        return contrastive_loss(
            c.image_projection(img_h), c.text_projection(txt_h), c.logit_scale, self.config.objectives.logit_scale_max
        )
