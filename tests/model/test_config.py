import json

import pytest
from pydantic import ValidationError

from model.config import PRESETS, FinMMConfig
from model.settings import ModelSection


def test_presets_sizes():
    for name, sizes in PRESETS.items():
        c = FinMMConfig.from_preset(name)
        assert c.encoder.hidden_size == sizes["hidden_size"] and c.encoder.num_layers == sizes["num_layers"]
        assert c.preset == name
    assert (PRESETS["small"]["hidden_size"], PRESETS["small"]["num_layers"]) == (384, 6)
    with pytest.raises(ValueError):
        FinMMConfig.from_preset("huge")


def test_dict_and_json_round_trip(config, tmp_path):
    d = config.to_dict()
    json.dumps(d)  # plain JSON
    again = FinMMConfig.from_dict(d)
    assert again.to_dict() == d
    assert again.tabular.categorical_cardinalities == [5, 3]
    assert again.heads["intent"] == {"num_classes": 5}
    config.save_pretrained(tmp_path)
    loaded = FinMMConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == d
    assert loaded.encoder == config.encoder


def test_sections_validate():
    with pytest.raises(ValueError, match="unknown keys"):
        FinMMConfig(encoder={"hiden_size": 3})
    with pytest.raises(ValueError, match="norm_placement"):
        FinMMConfig.from_preset("tiny", encoder={"norm_placement": "middle"})
    assert FinMMConfig.from_preset("tiny", encoder={"norm_placement": "pre"}).encoder.norm_placement == "pre"


def test_model_section_forbids_extra_and_documents_fields():
    with pytest.raises(ValidationError):
        ModelSection(presett="tiny")
    with pytest.raises(ValidationError):
        ModelSection(preset="huge")
    for name, f in ModelSection.model_fields.items():
        assert f.description, f"ModelSection.{name} has no docstring"


def test_model_section_to_config():
    s = ModelSection(
        preset="tiny",
        init_from_minilm=False,
        image_size=32,
        image_patch_size=8,
        series_patch_len=2,
        mlm_weight=0.5,
        explain_method="grad_x_input",
        heads={"sentiment": {}},
    )
    c = s.to_finmm_config(
        30600, {"numeric_features": ["a"], "categorical_features": ["b"], "categorical_cardinalities": [4]}
    )
    assert c.text.vocab_size == 30600 and c.image.image_size == 32 and c.image.num_patches == 16
    assert c.series.patch_len == 2 and c.objectives.mlm_weight == 0.5 and c.explain.method == "grad_x_input"
    assert c.tabular.feature_names == ["a", "b"] and c.encoder.hidden_size == 64
    with pytest.raises(ValueError, match="multiple"):
        ModelSection(image_size=30, image_patch_size=8).to_finmm_config(30522)
