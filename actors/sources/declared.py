"""The generic loader: a data set declaration (`actors.declaration.DatasetDeclaration`) -> `SourceTable`.

It reads the data sets declared in config and the built-ins whose declaration (actors/sources/builtin.yaml)
names no parser (Banking77). It produces the rows the parsers produce (`id`, `split`, `label`, `text`, `image`,
`num__*`, `cat__*`, kept columns, `source`, `source_row`), so `finmm prepare` shards, scales, tokenises and
reconciles a declared data set like any other. Reading is pandas/pyarrow (`read_csv`, `read_parquet`,
`read_json(lines=True)`). A problem with the declaration as a whole (a missing column, a column that is not
numeric, duplicate ids, an empty split) raises `DeclarationError` with what, where and how to fix
(`DeclaredFileError`, also a `DataFileError`, when one file cannot be read as declared); a problem confined to
one row rejects that row with the column named.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import glob
import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from actors.declaration import SPLITS, DatasetDeclaration, FileSplit, HashSplit, TimeSplit, join_text
from actors.settings import DATASET_NAMES, DataSection
from actors.sources.base import (
    DeclarationError,
    DeclaredFileError,
    SourceSpec,
    SourceTable,
    concat_rejected,
    conform,
    core_fields,
    empty_rejected,
    md5_bucket,
    rejected_frame,
    slice_per_split,
)
from actors.sources.rules import file_splits, generated_id, hash_split, held_out, kfold

SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
                  ".jsonl": "jsonl", ".ndjson": "jsonl"}


def declared_spec(name: str, decl: DatasetDeclaration) -> SourceSpec:
    """The registry entry of a data set the generic loader reads. A declared one's files are its globs'
    matches; a built-in's (Banking77) are listed in its declaration, so a missing one is named up front."""
    builtin = name in DATASET_NAMES
    side = (decl.label.classes_file,) if decl.label is not None and decl.label.classes_file else ()
    return SourceSpec(
        name=name,
        title=decl.title or name,
        files=tuple(decl.files) + side if builtin else (),
        source_url=source_url(name, decl),
        license=decl.license or "your own data (not shipped with finmm)",
        modalities=decl.modalities(),
        schema=schema_for(decl),
        load=partial(load, name, decl),
        list_files=None if builtin else partial(_required_files, name, decl),
        folder=decl.folder if builtin else decl.folder or name,
    )


def key(name: str) -> str:
    """Where a data set's declaration is, for error messages."""
    return f"actors/sources/builtin.yaml: {name}" if name in DATASET_NAMES else f"data.declared.{name}"


def source_url(name: str, decl: DatasetDeclaration) -> str:
    return decl.source_url or f"declared in data.declared.{name}"


def schema_for(decl: DatasetDeclaration) -> pa.Schema:
    fields = core_fields()
    if decl.text:
        fields.append(pa.field("text", pa.string()))
    if decl.image:
        fields.append(pa.field("image", pa.binary()))
    fields += [pa.field(f"num__{c}", pa.float64()) for c in decl.numeric]
    fields += [pa.field(f"cat__{c}", pa.string()) for c in decl.categorical]
    fields += [pa.field(c, pa.string()) for c in decl.keep]
    return pa.schema(fields + [pa.field("source", pa.string()), pa.field("source_row", pa.int64())])


def _required_files(name: str, decl: DatasetDeclaration, folder: Path) -> tuple[str, ...]:
    side = (decl.label.classes_file,) if decl.label is not None and decl.label.classes_file else ()
    return matched_files(name, decl, folder) + side


def matched_files(name: str, decl: DatasetDeclaration, folder: Path) -> tuple[str, ...]:
    """Every file the globs match, relative to `folder`, sorted; a glob that matches nothing is an error."""
    found: list[str] = []
    for pattern in decl.files:
        hits = sorted(Path(p) for p in glob.glob(str(folder / pattern), recursive=True) if Path(p).is_file())
        if not hits:
            present = sorted(p.name for p in folder.iterdir())[:20] if folder.is_dir() else []
            raise DeclarationError(
                f"data set {name!r}: {pattern!r} matches no file",
                f"{key(name)}.files, under {folder}" + ("" if folder.is_dir() else " (no such folder)"),
                (f"files there: {', '.join(present)}" if present else "put the files there")
                + "; paths are relative to the data set folder (data root / `folder`, default the name)")
        found += [str(p.relative_to(folder)) for p in hits]
    return tuple(dict.fromkeys(found))


# ------------------------------------------------------------------------------------------------ reading


def read_table(name: str, decl: DatasetDeclaration, path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One file as a frame (CSV/TSV: every cell text) and each row's line (CSV, header = 1) or record number."""
    where = f"{key(name)}.files; file {path}"
    fmt = decl.read.format or SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DeclaredFileError(name, path, f"cannot tell the format of {path.name}", where,
                                f"set read.format to one of csv, tsv, parquet, jsonl (suffixes known: "
                                f"{', '.join(SUFFIX_FORMATS)})", source_url(name, decl))
    try:
        if fmt in ("csv", "tsv"):
            sep = decl.read.delimiter or ("\t" if fmt == "tsv" else ",")
            header = decl.read.columns is None
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=decl.read.na_values,
                             encoding=decl.read.encoding, sep=sep, header=0 if header else None,
                             names=decl.read.columns)
            return df, np.arange(len(df), dtype="int64") + (2 if header else 1)
        if fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_json(path, lines=True, dtype=False, encoding=decl.read.encoding)
    except (UnicodeDecodeError, ValueError, OSError, pa.ArrowException, pd.errors.ParserError) as e:
        raise DeclaredFileError(name, path, f"cannot read {path.name} as {fmt}: {e}", where,
                                "check read.format, read.encoding and read.delimiter against the file",
                                source_url(name, decl)) from e
    return df, np.arange(len(df), dtype="int64") + 1


def read_classes(name: str, decl: DatasetDeclaration, folder: Path) -> list[str]:
    """The class names of `label.classes_file`: a JSON array of distinct, non-empty strings."""
    path = folder / decl.label.classes_file
    where = f"{key(name)}.label.classes_file; file {path}"
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        problem = f"not valid UTF-8 at byte {e.start}"
    except json.JSONDecodeError as e:
        problem = f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
    else:
        if isinstance(names, list) and names and len(set(names)) == len(names) \
                and all(isinstance(c, str) and c for c in names):
            return names
        problem = "expected a JSON array of distinct class names"
    raise DeclaredFileError(name, path, f"data set {name!r}: {path.name}: {problem}", where,
                            "give a JSON array of the class names in label-id order", source_url(name, decl))


def role_of(decl: DatasetDeclaration, column: str) -> str:
    """Where a column is declared, as a config key under the data set (for error messages)."""
    for role, columns in decl.feature_columns().items():
        if column in columns:
            return role if role != "image" else "image.column"
    if column == decl.id:
        return "id"
    if decl.label is not None and column == decl.label.column:
        return "label.column"
    if column in decl.keep:
        return "keep"
    return "split.validation.column" if decl.split.kind == "file" else "split.column"


def check_columns(name: str, decl: DatasetDeclaration, path: Path, columns) -> None:
    present = [str(c) for c in columns]
    for column in decl.columns_read():
        if column not in present:
            close = difflib.get_close_matches(column, present, n=1, cutoff=0.6)
            raise DeclaredFileError(
                name, path, f"data set {name!r}: column {column!r} is not in {path.name}",
                f"{key(name)}.{role_of(decl, column)}; file {path}",
                (f"did you mean {close[0]!r}? " if close else "")
                + f"Columns present: {', '.join(present)}", source_url(name, decl))


def _text(value) -> str | None:
    """A cell as text: missing stays None, integral floats lose their `.0` (Parquet/JSON numbers)."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _texts(series: pd.Series) -> list[str | None]:
    return [_text(v) for v in series]


# ----------------------------------------------------------------------------------------------- one file


def _file_rows(name: str, decl: DatasetDeclaration, folder: Path, rel: str, classes: list[str] | None,
               split: str | None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(accepted rows of one file, its rejected rows, rows read). `classes`: the names of a classes_file;
    `split`: the file's split under a file rule. Split rules that need every row (random, k-fold) are applied
    later, on all files' accepted rows."""
    path = folder / rel
    df, line = read_table(name, decl, path)
    check_columns(name, decl, path, df.columns)
    df = df.reset_index(drop=True)  # a Parquet file may bring its own index
    df.columns = [str(c) for c in df.columns]
    n = len(df)
    reason = pd.Series([""] * n, dtype=object)

    def reject(mask, why: str) -> None:
        mask = np.asarray(mask, dtype=bool) & (reason == "").to_numpy()
        reason[mask] = why

    out = pd.DataFrame({"source": [rel] * n, "source_row": line})
    label = decl.label
    if label is None:
        out["label_value"] = None
    else:
        out["label_value"] = _texts(df[label.column])
        reject(out["label_value"].isna(), f"missing label (column {label.column!r})")
        allowed = label.classes or dict.fromkeys(classes or ())
        if allowed:
            listed = label.classes_file or "label.classes"
            reject(~out["label_value"].isin(list(allowed)) & out["label_value"].notna(),
                   f"label value not in {listed} (column {label.column!r})")
    for column in decl.numeric:
        raw = df[column]
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = (raw.notna() & values.isna()).to_numpy()
        if n and bad.mean() > decl.max_invalid_share:
            examples = ", ".join(repr(v) for v in raw[bad].drop_duplicates().head(3))
            raise DeclaredFileError(
                name, path, f"data set {name!r}: numeric column {column!r} holds non-numbers in {bad.sum()} of {n} "
                f"rows of {path.name} (e.g. {examples})", f"{key(name)}.numeric; file {path}",
                f"declare {column!r} as categorical or text, or clean the file; more than max_invalid_share "
                f"{decl.max_invalid_share} of the rows refuses the file", source_url(name, decl))
        reject(bad, f"non-numeric value in numeric column {column!r}")
        out[f"num__{column}"] = values.to_numpy()
    for column in decl.categorical:
        out[f"cat__{column}"] = pd.Series(_texts(df[column]), dtype="str")
    if decl.text:
        parts = [_texts(df[c]) for c in decl.text]
        out["text"] = [join_text(decl.text, list(row), decl.strip_text) for row in zip(*parts, strict=True)]
        if decl.modalities() == ("text",):  # text is all the row has (elsewhere empty text = modality absent)
            reject([not t.strip() for t in out["text"]], f"empty text (column{'s' if len(decl.text) > 1 else ''} "
                                      f"{', '.join(repr(c) for c in decl.text)})")
    if decl.id:
        out["id"] = _texts(df[decl.id])
        reject(out["id"].isna(), f"missing id (column {decl.id!r})")
    else:
        out["id"] = [generated_id(decl.id_format, rel, int(r)) for r in line]
    for column in decl.keep:
        out[column] = pd.Series(_texts(df[column]), dtype="str")
    if decl.image:
        images, why = _images(df[decl.image.column], decl, folder)
        for problem in sorted({w for w in why if w}):
            reject([w == problem for w in why], problem)
        out["image"] = images
    _row_split(decl, df, out, reject, split)
    bad = (reason != "").to_numpy()
    rejected = rejected_frame(df[bad], reason[bad], rel, line[bad]) if bad.any() else empty_rejected(df.columns)
    return out[~bad].reset_index(drop=True), rejected, n


def _images(values: pd.Series, decl: DatasetDeclaration, folder: Path) -> tuple[list, list[str]]:
    """Each row's image bytes (None = no image) and why it is unusable ('' when it is fine)."""
    column, kind = decl.image.column, decl.image.kind
    images, why = [], []
    for value in values:
        data, problem = None, ""
        if isinstance(value, (bytes, bytearray)) and kind != "path":
            data = bytes(value)
        elif (text := _text(value)) is not None and text.strip():
            if kind == "path":
                file = folder / text.strip()
                if file.is_file():
                    data = file.read_bytes()
                else:
                    problem = f"image file not found (column {column!r})"
            elif kind == "base64":
                try:
                    data = base64.b64decode(text, validate=True)
                except (binascii.Error, ValueError):
                    problem = f"invalid base64 image (column {column!r})"
            else:
                problem = f"image column {column!r} holds text, not bytes"
        if data is None and not problem and decl.modalities() == ("image",):
            problem = f"missing image (column {column!r})"
        images.append(data)
        why.append(problem)
    return images, why


def _row_split(decl: DatasetDeclaration, df: pd.DataFrame, out: pd.DataFrame, reject, file_split: str | None) -> None:
    """The split of the rules that decide row by row (column, file, time, hash); the others get '' for now."""
    rule = decl.split
    if isinstance(rule, FileSplit):
        out["split"] = file_split
        if rule.validation is not None and file_split == "train":
            column = rule.validation.column
            keys = list(out["id"]) if column is None else _texts(df[column])
            if column is not None:
                reject([k is None for k in keys], f"missing value in split.validation column {column!r}")
            out.loc[held_out([k or "" for k in keys], rule.validation), "split"] = "validation"
    elif rule.kind == "column":
        mapped = [None if v is None else rule.values.get(v, v) for v in _texts(df[rule.column])]
        out["split"] = [m if m in SPLITS else "" for m in mapped]
        reject(out["split"] == "", f"split value is not train, validation or test (column {rule.column!r}; "
                                   f"map it under split.values)")
    elif isinstance(rule, TimeSplit):
        dates = pd.to_datetime(df[rule.column], format=rule.format, errors="coerce")
        if getattr(dates.dt, "tz", None) is not None:
            dates = dates.dt.tz_localize(None)
        reject(dates.isna(), f"missing or unparseable date in split column {rule.column!r}")
        if rule.train_from is not None:
            reject(dates < pd.Timestamp(rule.train_from), f"date before split.train_from (column {rule.column!r})")
        if rule.test_until is not None:
            reject(dates >= pd.Timestamp(rule.test_until),
                   f"date on or after split.test_until (column {rule.column!r})")
        test = (dates >= pd.Timestamp(rule.test_from)).to_numpy()
        if rule.validation_from is not None:
            val = (dates >= pd.Timestamp(rule.validation_from)).to_numpy() & ~test
        else:
            val = np.array([md5_bucket(str(i)) < rule.validation_buckets for i in out["id"]], dtype=bool) & ~test
        out["split"] = np.where(test, "test", np.where(val, "validation", "train"))
    elif isinstance(rule, HashSplit):
        keys = list(out["id"]) if rule.column is None else _texts(df[rule.column])
        if rule.column is not None:
            reject([k is None for k in keys], f"missing value in split column {rule.column!r}")
        out["split"] = hash_split([k or "" for k in keys], rule)
    else:
        out["split"] = ""


# --------------------------------------------------------------------------------------------- all files


def load(name: str, decl: DatasetDeclaration, root: Path, settings: DataSection) -> SourceTable:
    folder = Path(root) / (decl.folder or name)
    files = matched_files(name, decl, folder)
    file_classes = read_classes(name, decl, folder) if decl.label is not None and decl.label.classes_file else None
    splits: dict[str, str] = {}
    if isinstance(decl.split, FileSplit):
        try:
            splits = file_splits(decl.split, files)
        except ValueError as e:
            raise DeclarationError(f"data set {name!r}: {e}", f"{key(name)}.split.files",
                                   "map every file read to train, validation or test") from None
    accepted, rejected, n_read = [], [], 0
    for rel in files:
        rows, rej, n = _file_rows(name, decl, folder, rel, file_classes, splits.get(rel))
        accepted.append(rows)
        rejected.append(rej)
        n_read += n
    rows = pd.concat(accepted, ignore_index=True)
    _check_unique_ids(name, decl, rows)
    if decl.label is None:
        classes = None
        rows["label"] = -1
    else:
        classes = file_classes or _class_names(name, decl, rows["label_value"])
        index = {c: i for i, c in enumerate(classes)}
        mapping = decl.label.classes or {c: c for c in classes}
        rows["label"] = [index[mapping[v]] for v in rows["label_value"]]
    _table_split(decl, rows)
    _check_splits(name, decl, rows)
    rows = conform(rows, schema_for(decl))
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    side = [folder / decl.label.classes_file] if file_classes else []
    return SourceTable(name, rows, concat_rejected(rejected), [folder / f for f in files] + side, n_read=n_read,
                       n_sliced_out=n_sliced, classes=classes)


def _check_unique_ids(name: str, decl: DatasetDeclaration, rows: pd.DataFrame) -> None:
    dup = rows["id"].duplicated(keep=False)
    if dup.any():
        first = rows.loc[dup].groupby("id", sort=False)["source"].apply(list).head(3)
        listed = "; ".join(f"{i!r} in {', '.join(dict.fromkeys(s))}" for i, s in first.items())
        raise DeclarationError(
            f"data set {name!r}: {int(rows['id'].duplicated().sum())} duplicate id(s) in column {decl.id!r}, "
            f"first: {listed}", f"{key(name)}.id",
            "give a column whose values are unique, or leave `id` empty to generate <file>:<row> ids")


def _class_names(name: str, decl: DatasetDeclaration, values: pd.Series) -> list[str]:
    declared = decl.label.class_names()
    if declared is not None:
        return declared
    seen = sorted(values.dropna().unique().tolist())
    if decl.label.positive is not None:
        if decl.label.positive not in seen or len(seen) != 2:
            raise DeclarationError(
                f"data set {name!r}: label.positive {decl.label.positive!r} needs exactly two label values "
                f"including it; column {decl.label.column!r} holds {len(seen)}: {seen[:10]}",
                f"{key(name)}.label", "map the raw values onto two classes under label.classes")
        seen = [v for v in seen if v != decl.label.positive] + [decl.label.positive]
    return seen


def _table_split(decl: DatasetDeclaration, rows: pd.DataFrame) -> None:
    """The rules that need every accepted row: seeded random fractions and stratified k-fold."""
    rule = decl.split
    if rule.kind == "random":
        order = np.random.default_rng(rule.seed).permutation(len(rows))
        names = np.empty(len(rows), dtype=object)
        start = 0
        shares = list(rule.fractions.items())
        for k, (split, share) in enumerate(shares):
            stop = len(rows) if k == len(shares) - 1 else start + int(round(share * len(rows)))
            names[order[start:stop]] = split
            start = stop
        rows["split"] = names
    elif rule.kind == "kfold":
        rows["split"] = kfold(rows["label"].to_numpy(), rule)


def _check_splits(name: str, decl: DatasetDeclaration, rows: pd.DataFrame) -> None:
    """Train and test (every fold, for k-fold) must hold rows; say which is empty and why."""
    rule = decl.split
    counts = rows["split"].value_counts()
    if rule.kind == "kfold":
        if (counts.index == "fold-1").any() or len(counts) < rule.folds:
            smallest = rows["label"].value_counts().min() if len(rows) else 0
            raise DeclarationError(
                f"data set {name!r}: {rule.folds} stratified folds need at least {rule.folds} rows of every "
                f"class; the rarest class has {smallest} of {len(rows)} accepted rows",
                f"{key(name)}.split", "lower split.folds, or check the label coding")
        return
    for split in ("train", "test"):
        if counts.get(split, 0) == 0:
            raise DeclarationError(f"data set {name!r}: the {split} split is empty: {_why_empty(rule, rows, split)}",
                                   f"{key(name)}.split ({rule.kind})",
                                   "change the split rule so that both train and test get rows")


def _why_empty(rule, rows: pd.DataFrame, split: str) -> str:
    if len(rows) == 0:
        return "no row was accepted (see the rejected rows' reasons)"
    if rule.kind == "column":
        return f"no accepted row's {rule.column!r} is (or maps to) {split!r}"
    if rule.kind == "file":
        return f"no accepted row comes from a file that split.files maps to {split!r}"
    if rule.kind == "time":
        first_cut = rule.validation_from or rule.test_from
        side = f"before {first_cut}" if split == "train" else f"on or after {rule.test_from}"
        return f"no row of {rule.column!r} is dated {side}"
    if rule.kind == "hash":
        return f"no value hashed into the {split} buckets of {rule.buckets} ({len(rows)} accepted rows)"
    return f"fraction {rule.fractions.get(split, 0)} of {len(rows)} accepted rows"
