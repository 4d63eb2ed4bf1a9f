"""The composed config: defaults, the shipped ray_config.yaml, overrides and error messages."""

from pathlib import Path

import pytest

from finmm.config import ConfigError, FinMMSettings, iter_fields, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_validates():
    settings = load_settings(REPO / "ray_config.yaml")
    assert settings.serve.http.host == "127.0.0.1"
    assert set(FinMMSettings.model_fields) == {"cluster", "data", "model", "pretrain", "finetune", "serve"}


def test_every_field_is_documented():
    undocumented = [key for key, _a, _d, doc in iter_fields() if not doc.strip()]
    assert undocumented == []


def test_dotted_override_changes_a_nested_value():
    settings = load_settings(REPO / "ray_config.yaml", ["data.text.max_length=64", "serve.http.port=9001"])
    assert settings.data.text.max_length == 64
    assert settings.serve.http.port == 9001


def test_unknown_key_names_file_path_line_and_closest_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  text:\n    max_lenght: 64\n")
    with pytest.raises(ConfigError) as info:
        load_settings(bad)
    message = str(info.value)
    assert str(bad) in message
    assert "data.text.max_lenght" in message
    assert "line 3" in message
    assert "did you mean 'data.text.max_length'" in message


def test_wrong_type_says_what_was_expected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("serve:\n  http:\n    port: eighty\n")
    with pytest.raises(ConfigError) as info:
        load_settings(bad)
    message = str(info.value)
    assert "serve.http.port" in message and "integer" in message and "'eighty'" in message


def test_out_of_range_value_is_rejected():
    with pytest.raises(ConfigError) as info:
        load_settings(None, ["pretrain.deepspeed.zero_stage=4"])
    assert "pretrain.deepspeed.zero_stage" in str(info.value)
    assert "command-line override" in str(info.value)


def test_override_without_equals_sign_is_explained():
    with pytest.raises(ConfigError, match="key.path=value"):
        load_settings(None, ["data.text.max_length"])


def test_unknown_section_suggests_the_closest(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("finetun:\n  epochs: 2\n")
    with pytest.raises(ConfigError, match="did you mean 'finetune'"):
        load_settings(bad)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")


def test_a_moved_model_key_names_its_new_home(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("model:\n  preset: tiny\n  image_size: 64\n")
    with pytest.raises(ConfigError, match=r"model\.image_size has moved to data\.image\.image_size") as err:
        load_settings(old)
    assert str(old) in str(err.value)
