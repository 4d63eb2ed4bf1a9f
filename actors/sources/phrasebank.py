"""Financial PhraseBank v1.0, 50%-agreement subset: English financial news sentences, 3-class sentiment.

Declared in builtin.yaml (`parser: financial_phrasebank`): the file, the label classes and the hash split come
from there, and `options.all_agree_file` names the list behind `all_agree`. What needs Python is the format:
headerless `sentence@label` lines split on the last `@` (the sentences contain `@`), latin-1 bytes that must
not have been re-encoded (that would change the hash split), and EVAL.md's de-duplication (duplicates keep the
first; a sentence with two labels is dropped).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from actors.settings import DataSection
from actors.sources.base import SourceTable, conform, core_fields, rejected_frame, slice_per_split
from actors.sources.builtin import Parser, builtin_declaration, file_error
from actors.sources.rules import generated_id, hash_split, label_index

NAME = "financial_phrasebank"
DECL = builtin_declaration(NAME)
FILE = DECL.files[0]
ALL_AGREE_FILE = DECL.options["all_agree_file"]
LABELS = label_index(DECL.label)

SCHEMA = pa.schema(
    core_fields()
    + [pa.field("text", pa.string()), pa.field("all_agree", pa.bool_()), pa.field("source_row", pa.int64())]
)


def split_of(sentence: str) -> str:
    """The declared hash split (EVAL.md: md5 bucket 0-1 → test, 2 → validation, else train)."""
    return hash_split([sentence], DECL.split)[0]


def read_lines(path: Path) -> list[str]:
    """The file's lines, decoded as latin-1 (CRLF or LF endings; builtin.yaml's read.encoding).

    Latin-1 decodes any byte, so a file that was re-encoded to UTF-8 would load silently as mojibake and change
    the hash split: such a file (non-ASCII bytes that are valid UTF-8) is refused."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise file_error(NAME, path, f"cannot read: {e}") from e
    if not raw.strip():
        raise file_error(NAME, path, "file is empty; expected lines of `sentence@label`")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise file_error(NAME, path, "file is UTF-16-encoded, expected the original latin-1 bytes")
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raise file_error(NAME, path, "file is UTF-8-encoded, expected the original latin-1 bytes")
    return raw.decode(DECL.read.encoding).splitlines()


def parse(lines: list[str]) -> tuple[list[tuple[int, str, int]], list[tuple[int, str, str]]]:
    """→ ([(line_no, sentence, label)], [(line_no, raw line, reason)]). Splits on the last '@'."""
    good, bad = [], []
    for i, line in enumerate(lines, start=1):
        if "@" not in line:
            bad.append((i, line, "line has no '@' before the label"))
            continue
        sentence, label = line.rsplit("@", 1)
        if label.strip() not in LABELS:
            bad.append((i, line, f"unknown label {label.strip()!r}"))
        elif not sentence.strip():
            bad.append((i, line, "empty sentence"))
        else:
            good.append((i, sentence, LABELS[label.strip()]))
    return good, bad


def load(root: Path, settings: DataSection) -> SourceTable:
    folder = root / NAME
    lines = read_lines(folder / FILE)
    good, bad = parse(lines)
    all_agree = {s for _, s, _ in parse(read_lines(folder / ALL_AGREE_FILE))[0]}

    df = pd.DataFrame(good, columns=["source_row", "text", "label"])
    n_labels = df.groupby("text")["label"].transform("nunique")
    conflicting = n_labels > 1
    duplicate = df.duplicated("text", keep="first") & ~conflicting
    for mask, reason in ((conflicting, "sentence occurs with conflicting labels"), (duplicate, "duplicate sentence")):
        for r in df[mask].itertuples():
            bad.append((r.source_row, lines[r.source_row - 1], reason))
    rows = df[~(conflicting | duplicate)].copy()
    rows["id"] = [generated_id(DECL.id_format, FILE, r) for r in rows["source_row"]]
    rows["split"] = [split_of(s) for s in rows["text"]]
    rows["all_agree"] = rows["text"].isin(all_agree)
    rows = conform(rows, SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)

    bad.sort()
    rejected = rejected_frame(
        pd.DataFrame({"line": [b[1] for b in bad]}), [b[2] for b in bad], FILE, [b[0] for b in bad]
    )
    return SourceTable(
        NAME, rows, rejected, [folder / FILE, folder / ALL_AGREE_FILE], n_read=len(lines), n_sliced_out=n_sliced
    )


PARSER = Parser(load=load, schema=SCHEMA, side_files=(ALL_AGREE_FILE,))
