"""Text actor: tokenisation, CJK vocabulary extension, truncation, rejects. No Ray needed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from actors.data_root import resolve_data_root
from actors.settings import DataSection, TextSettings
from actors.text import (
    TextPreprocessor,
    TextRejected,
    build_tokenizer,
    encode_text,
    load_tokenizer,
    unk_stats,
)

FINFE = resolve_data_root(None) / "fincuge_finfe"


@pytest.fixture(scope="module")
def small_tokenizer():
    train = ["股票大涨", "股票大跌", "涨停了", "hello market"]
    return build_tokenizer(DataSection(text=TextSettings(max_length=16, cjk_min_frequency=1)), train)


def test_english_and_chinese_tokenise(small_tokenizer):
    tok, info = small_tokenizer
    assert info["base_vocab_size"] == 30522
    assert info["vocab_size"] == 30522 + info["added_tokens"]
    english = encode_text(tok, "Shares of Apple rose 5%")
    assert english["input_ids"][0] == tok.token_to_id("[CLS]")
    assert english["input_ids"][-1] == tok.token_to_id("[SEP]")
    assert english["n_unk"] == 0
    chinese = encode_text(tok, "股票涨停")
    tokens = [tok.id_to_token(int(i)) for i in chinese["input_ids"]]
    assert tokens == ["[CLS]", "股", "票", "涨", "停", "[SEP]"]
    assert chinese["n_unk"] == 0
    assert len(chinese["attention_mask"]) == chinese["n_tokens"] == 6


def test_char_only_in_test_text_is_not_added():
    train = ["股票大涨"] * 3
    tok, info = build_tokenizer(DataSection(), train)  # cjk_min_frequency=2
    added = set(info["added_chars"])
    assert "鑫" not in added and tok.token_to_id("鑫") is None  # never seen in train
    assert encode_text(tok, "鑫")["n_unk"] == 1
    assert all(tok.token_to_id(c) is not None for c in "股票大涨")


def test_frequency_floor():
    tok, info = build_tokenizer(DataSection(text=TextSettings(cjk_min_frequency=2)), ["涨涨 鑫"])
    assert "涨" in info["added_chars"] or tok.token_to_id("涨") is not None
    assert "鑫" not in info["added_chars"]


def test_extension_off_keeps_base_vocab():
    tok, info = build_tokenizer(DataSection(text=TextSettings(extend_cjk=False)), ["鑫鑫鑫"])
    assert info["added_tokens"] == 0 and tok.get_vocab_size() == 30522


def test_max_length_truncation(small_tokenizer):
    tok, _ = small_tokenizer
    out = encode_text(tok, "word " * 100)
    assert out["n_tokens"] == 16
    assert out["input_ids"][-1] == tok.token_to_id("[SEP]")


def test_saved_tokenizer_round_trips(small_tokenizer, tmp_path):
    tok, _ = small_tokenizer
    tok.save(str(tmp_path / "tokenizer.json"))
    again = load_tokenizer(tmp_path / "tokenizer.json", 16)
    text = "股票涨停 hello " * 10
    assert list(encode_text(again, text)["input_ids"]) == list(encode_text(tok, text)["input_ids"])


def test_batch_rejects_empty_text_and_keeps_earlier_reason(small_tokenizer):
    tok, _ = small_tokenizer
    actor = TextPreprocessor.from_tokenizer(tok, max_length=16)
    batch = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "text": ["股票大涨", "", None, "  \t", "ok text"],
            "reject_reason": [None, None, None, None, "corrupt image"],
        }
    )
    out = actor(batch)
    assert out["reject_reason"].tolist() == [None, "empty text", "empty text", "empty text", "corrupt image"]
    assert out["input_ids"][1] is None and out["n_tokens"].tolist()[1] == 0
    assert out["n_tokens"].tolist()[0] == 6 and out["input_ids"][0].dtype.name == "int32"
    with pytest.raises(TextRejected, match="empty text"):
        actor.encode("   ")


def test_optional_text_is_absent_not_rejected(small_tokenizer):
    tok, _ = small_tokenizer
    actor = TextPreprocessor.from_tokenizer(tok, max_length=16, required=False)
    out = actor(pd.DataFrame({"text": ["", "hi"]}))
    assert out["reject_reason"].isna().all()
    assert out["input_ids"][0] is None and len(out["input_ids"][1]) == 3


def test_finfe_unk_rate_drops_after_cjk_extension():
    train = [t for t, _ in json.loads((FINFE / "train_list.json").read_text(encoding="utf-8"))]
    evals = [t for t, _ in json.loads((FINFE / "eval_list.json").read_text(encoding="utf-8"))]
    settings = DataSection()
    base, _ = build_tokenizer(DataSection(text=TextSettings(extend_cjk=False)), [])
    extended, info = build_tokenizer(settings, train)
    before = unk_stats(base, evals)["unk_rate"]
    after = unk_stats(extended, evals)["unk_rate"]
    assert info["added_tokens"] > 1000
    assert before > 0.5  # most Chinese characters are [UNK] in MiniLM's vocabulary
    assert after < 0.02  # measured 0.3% on eval with the default floor of 2


def test_long_text_head_shortcut_matches_full_encoding(small_tokenizer):
    tok, _ = small_tokenizer  # max_length 16: heads of 128 characters
    texts = [
        "word " * 300,
        "股票大涨" * 100,
        "x" * 500 + " tail",  # no boundary near the cut: the whole text is encoded
        "short " * 3 + "a" * 150,  # the head yields < max_length tokens: re-encoded whole
        "unbelievably" * 20 + " " + "market " * 40,
    ]
    tok.enable_truncation(16)
    actor = TextPreprocessor.from_tokenizer(tok, max_length=16)
    got = actor(pd.DataFrame({"text": texts}))["input_ids"].tolist()
    for text, ids in zip(texts, got, strict=False):
        assert list(ids) == tok.encode(text).ids, text[:30]
