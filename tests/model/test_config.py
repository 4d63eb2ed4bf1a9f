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
        image_patch_size=8,
        series_patch_len=2,
        mlm_weight=0.5,
        heads={"sentiment": {}},
    )
    c = s.to_finmm_config(
        30600, {"numeric_features": ["a"], "categorical_features": ["b"], "categorical_cardinalities": [4]},
        image_size=32,  # data.image.image_size: the one home of the image side
    )
    assert c.text.vocab_size == 30600 and c.image.image_size == 32 and c.image.num_patches == 16
    assert c.series.patch_len == 2 and c.objectives.mlm_weight == 0.5
    assert c.tabular.feature_names == ["a", "b"] and c.encoder.hidden_size == 64
    with pytest.raises(ValueError, match="data.image.image_size 30 is not a multiple of model.image_patch_size 8"):
        ModelSection(image_patch_size=8).to_finmm_config(30522, image_size=30)


def test_model_schema_has_one_home(tmp_path):
    """Every model: key names its FinMMConfig field and takes that field's default; a section survives the trip
    through a saved config.json and back (issue 16 item 8)."""
    defaults = FinMMConfig()
    for name, paths in ModelSection.knobs().items():
        for dotted in paths:
            section, field = dotted.split(".")
            assert getattr(getattr(defaults, section), field) == ModelSection.model_fields[name].default, dotted
    assert set(ModelSection.knobs()) == set(ModelSection.model_fields) - {"preset", "init_from_minilm", "heads"}
    s = ModelSection(preset="tiny", init_from_minilm=False, norm_placement="pre", dropout=0.05, image_patch_size=4,
                     series_patch_len=2, series_max_len=64, max_text_positions=128, mlm_weight=0.5,
                     contrastive_weight=0.25, mfm_weight=2.0, mlm_probability=0.2, mfm_probability=0.3,
                     heads={"intent": {"num_classes": 10}})
    config = s.to_finmm_config(30600, image_size=32)
    assert config.encoder.dropout == config.encoder.attention_dropout == 0.05
    config.save_pretrained(tmp_path)
    loaded = FinMMConfig.from_pretrained(tmp_path)
    assert ModelSection.from_finmm_config(loaded, init_from_minilm=False) == s


def test_moved_model_keys_name_their_one_home():
    with pytest.raises(ValidationError, match="model.image_size has moved to data.image.image_size"):
        ModelSection(image_size=64)
    with pytest.raises(ValidationError, match="model.explain_method has moved to serve.explain_method.*"
                                              "model.ig_steps has moved to serve.explain_steps"):
        ModelSection(explain_method="grad_x_input", ig_steps=8)
