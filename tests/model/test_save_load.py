import json
import time

import pytest
import torch
from transformers import AutoConfig, AutoModel

import model as finmm_model  # registers "finmm" with the Auto classes
from model import FinMMConfig, FinMMForPretraining, FinMMForTask, FinMMModel, load_bundle, save_bundle
from model.dummy import dummy_batch
from model.minilm_init import minilm_path


def test_backbone_round_trip_bit_exact(config, gen, tmp_path):
    m = FinMMModel(config).eval()
    b = dummy_batch(config, 3, generator=gen)
    m.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    for loaded in (FinMMModel.from_pretrained(tmp_path, use_safetensors=True), AutoModel.from_pretrained(tmp_path)):
        assert type(loaded) is FinMMModel
        loaded.eval()
        with torch.no_grad():
            assert torch.equal(loaded(b).hidden_states, m(b).hidden_states)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), FinMMConfig)


def test_bundle_round_trip(config, gen, tmp_path):
    m = FinMMForTask(config).eval()
    b = dummy_batch(config, 3, generator=gen)
    state = {"scalers": {"income": [0.0, 1.0]}, "version": 1}
    save_bundle(tmp_path, m, tokenizer_json_path=minilm_path() / "tokenizer.json", preprocessing_state=state)
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessing_state.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    bundle = load_bundle(tmp_path)
    assert type(bundle.model) is FinMMForTask and not bundle.model.training
    assert bundle.preprocessing_state == state
    saved, loaded = m.state_dict(), bundle.model.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)  # bit for bit
    with torch.no_grad():
        a, r = bundle.model(b), m(b)
    for head in config.heads:  # the same weights; the CPU kernels need not sum in the same order twice
        torch.testing.assert_close(a[head]["logits"], r[head]["logits"], rtol=0, atol=1e-6)
    tok = bundle.tokenizer()
    assert tok("net loss")["input_ids"][0] == 101
    # the backbone of a task folder also loads with AutoModel (prefix "finmm." stripped)
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(backbone(b).pooled, r["pooled"], rtol=0, atol=1e-6)


def test_pretraining_bundle_reloads_same_class(config, tmp_path):
    m = FinMMForPretraining(config)
    save_bundle(tmp_path, m)
    loaded = load_bundle(tmp_path).model
    assert type(loaded) is FinMMForPretraining
    assert torch.equal(loaded.contrastive.logit_scale, m.contrastive.logit_scale)
    assert torch.equal(loaded.mlm_head.bias, m.mlm_head.bias)


def test_pickle_only_folder_is_refused(config, tmp_path):
    FinMMModel(config).config.save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(FileNotFoundError, match="never loads pickled"):
        load_bundle(tmp_path)
    with pytest.raises(OSError):
        FinMMModel.from_pretrained(tmp_path, use_safetensors=True)


def test_small_model_saved_loads_with_automodel(tmp_path):
    """Done-when of issue 3: a `small` model (MiniLM-initialised) saved to a folder reloads with AutoModel
    and reproduces its outputs exactly."""
    t0 = time.time()
    section = finmm_model.ModelSection(preset="small", init_from_minilm=True)
    config_schema = {
        "numeric_features": ["income", "debt"],
        "categorical_features": ["sector"],
        "categorical_cardinalities": [4],
    }
    m = finmm_model.build_model(section, vocab_size=30600, tabular_schema=config_schema, kind="backbone").eval()
    b = dummy_batch(m.config, 2, text_len=16, series_len=8, generator=torch.Generator().manual_seed(0))
    save_bundle(tmp_path, m)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(b).hidden_states, m(b).hidden_states)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "finmm"
    assert time.time() - t0 < 30
