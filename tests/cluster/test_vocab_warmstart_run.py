"""`pretrain.trainable: new_vocab` (the Chinese warm start) through real Ray Train + DeepSpeed, 2 CPU workers."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from cluster.trainer import pretrain
from evaluation.recipes import RECIPES_DIR, load_recipe
from finmm.config import ConfigError, load_settings
from model.config import FinMMConfig
from model.pretraining import FinMMForPretraining
from model.vocab_warmstart import base_vocab_size

pytestmark = pytest.mark.timeout(600)
RECIPE = RECIPES_DIR / "cjk_warmstart.yaml"
WORD = "embedders.text.word_embeddings.weight"


def test_recipe_validates_and_new_vocab_refuses_what_would_move_frozen_rows():
    settings = load_settings(None, load_recipe(RECIPE))
    assert settings.pretrain.trainable == "new_vocab" and settings.pretrain.weight_decay == 0
    assert settings.model.preset == "small" and settings.model.init_from_minilm
    for bad, message in [("pretrain.weight_decay=0.01", "weight_decay"),
                         ("pretrain.tabular_datasets=[lending_club]", "tabular_datasets"),
                         ("pretrain.text_datasets=[]", "text_datasets")]:
        with pytest.raises(ConfigError, match=message):
            load_settings(None, [*load_recipe(RECIPE), bad])


def test_new_vocab_pretrain_moves_only_the_added_rows(tiny_settings, tmp_path):
    # The shared slice's tokenizer was extended with the CJK characters of every text corpus (FinFE and FinNL
    # included), so it has added rows; PhraseBank's MLM reaches them through the tied decoder's softmax.
    settings = tiny_settings(
        *load_recipe(RECIPE),
        "model.preset=tiny",
        "model.init_from_minilm=false",
        "model.dropout=0.0",
        "pretrain.text_datasets=[financial_phrasebank]",
        f"pretrain.output_dir={tmp_path / 'pretrain'}",
        "pretrain.batch_size=8",
        "pretrain.max_steps=3",
        "pretrain.warmup_steps=1",
        "pretrain.log_every=5",
    )
    outcome = pretrain(settings, name="cjk")
    trained = load_file(outcome.model_dir / "model.safetensors")

    # the worker's starting model: the same config and seed (build_training_model, before the freeze)
    torch.manual_seed(settings.pretrain.seed)
    start = FinMMForPretraining(FinMMConfig.from_pretrained(outcome.model_dir))
    initial = {k: v.detach() for k, v in start.finmm.state_dict().items()}
    vocab = trained[WORD].shape[0]
    base = base_vocab_size(json.loads((outcome.model_dir / "preprocessing_state.json").read_text()))
    assert vocab > base
    assert initial.keys() == trained.keys()
    assert torch.equal(trained[WORD][:base], initial[WORD][:base])
    assert (trained[WORD][base:] != initial[WORD][base:]).any(dim=1).all()
    unchanged = [k for k in initial if k != WORD and torch.equal(trained[k], initial[k])]
    assert unchanged == [k for k in initial if k != WORD]  # every encoder and embedder weight, bit for bit
