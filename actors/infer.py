"""Propose a data set declaration for a table (`finmm data infer FILE`), as AutoMM's `infer_column_types` does.

Each column gets a role from its values: an image path if most values end in .png/.jpg, numeric if nearly every
value parses as a number and it has more than `MAX_CATEGORY_NUMBERS` distinct values (fewer: categorical),
a date if nearly every value parses as one, text if its values are long or mostly distinct, an id if every value
is distinct and its name says so, else categorical. The label is a column whose name says so (`LABEL_NAMES`: the
whole name, else its last word, the one present on most rows), else the last low-cardinality categorical one; the
split is an existing split column, else a time cut at the date column's 80% quantile, else seeded random
fractions. The result is a plain dict that
`DatasetDeclaration` validates; the caller prints it as YAML with `notes` as comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

MAX_CATEGORY_NUMBERS = 10
"""A numeric column with at most this many distinct values is proposed as categorical (codes, 0/1 flags)."""
MAX_CLASSES = 100
"""A label candidate has 2..MAX_CLASSES distinct values."""
TEXT_MIN_MEAN_CHARS = 30
"""A string column whose values average at least this many characters is text."""
SAMPLE_ROWS = 200_000
"""Only the first rows are looked at (enough to tell the types; the check reads everything)."""
LABEL_NAMES = ("label", "target", "class", "y", "outcome", "status", "default", "intent", "category", "sentiment")
SPLIT_NAMES = ("split", "part", "partition", "set", "fold", "subset")
SPLIT_VALUES = {"train": "train", "training": "train", "test": "test", "testing": "test", "validation": "validation",
                "valid": "validation", "val": "validation", "dev": "validation"}
IMAGE_PATH = re.compile(r"\.(?:png|jpe?g)$", re.IGNORECASE)
ID_NAME = re.compile(r"(^|[_\s-])(id|key|uuid|number|no)$|^id([_\s-]|$)", re.IGNORECASE)


@dataclass
class Proposal:
    name: str
    declaration: dict
    notes: list[str] = field(default_factory=list)
    """One line per column (its role and why) and per choice, printed as YAML comments."""


def read_sample(path: Path) -> pd.DataFrame:
    """The first SAMPLE_ROWS rows; CSV/TSV as text with the delimiter sniffed."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path).head(SAMPLE_ROWS)
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True, dtype=False, nrows=SAMPLE_ROWS)
    sep = "\t" if suffix in (".tsv", ".tab") else None
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], sep=sep, engine="python",
                       nrows=SAMPLE_ROWS)


def sniff_delimiter(path: Path) -> str | None:
    """The CSV delimiter when it is not a comma (None for a comma or a non-CSV file)."""
    import csv

    if path.suffix.lower() not in (".csv", ".txt"):
        return None
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        head = fh.read(65536)
    try:
        found = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        return None
    return None if found == "," else found


def column_role(series: pd.Series) -> tuple[str, str]:
    """(role, why) of one column: image, numeric, categorical, date, text, id, constant or empty (the last two
    are left out of the proposal)."""
    values = series.dropna()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        values = values[values.astype(str).str.strip() != ""]
    n, distinct = len(values), values.nunique()
    if n == 0:
        return "empty", "no values"
    if distinct == 1:
        return "constant", f"one value only, {values.iloc[0]!r}"
    if pd.api.types.is_bool_dtype(values):
        return "categorical", "true/false"
    text = values.astype(str)
    if text.str.contains(IMAGE_PATH).mean() >= 0.9:
        return "image", "values end in .png/.jpg"
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().mean() >= 0.99:
        if distinct == n and ID_NAME.search(str(series.name)):
            return "id", f"{distinct} distinct values, one per row"
        if distinct <= MAX_CATEGORY_NUMBERS:
            return "categorical", f"numbers with only {distinct} distinct values"
        return "numeric", f"numbers, {distinct} distinct"
    if distinct == n and ID_NAME.search(str(series.name)):
        return "id", f"{distinct} distinct values, one per row"
    if text.str.len().mean() < 40 and text.str.match(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}").mean() >= 0.95:
        dates = pd.to_datetime(text, errors="coerce")
        if dates.notna().mean() >= 0.95:
            return "date", f"dates from {dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}"
    mean_chars = text.str.len().mean()
    if mean_chars >= TEXT_MIN_MEAN_CHARS or (distinct > 0.5 * n and distinct > MAX_CLASSES):
        return "text", f"{mean_chars:.0f} characters on average, {distinct} distinct"
    return "categorical", f"{distinct} distinct values"


def _label(df: pd.DataFrame, roles: dict[str, str]) -> str | None:
    def usable(c: str) -> bool:
        return roles[c] in ("categorical", "text") and 2 <= df[c].nunique() <= MAX_CLASSES

    exact = [c for c in df.columns if str(c).lower() in LABEL_NAMES and usable(c)]
    if exact:
        return exact[0]
    named = [c for c in df.columns if re.split(r"[_\s.-]+", str(c).lower())[-1] in LABEL_NAMES and usable(c)]
    if named:  # `loan_status`, `is_default`: the one present on most rows, the later one on a tie
        return max(reversed(named), key=lambda c: df[c].notna().sum())
    candidates = [c for c in df.columns if roles[c] == "categorical" and usable(c)]
    return candidates[-1] if candidates else None


def _split(df: pd.DataFrame, roles: dict[str, str], notes: list[str]) -> dict:
    for c in df.columns:
        values = {str(v).strip().lower() for v in df[c].dropna().unique()}
        if str(c).lower() in SPLIT_NAMES and values and values <= set(SPLIT_VALUES):
            notes.append(f"split: column {c!r} holds the split ({', '.join(sorted(values))})")
            raw = {str(v): SPLIT_VALUES[str(v).strip().lower()] for v in df[c].dropna().unique()}
            rule = {"kind": "column", "column": str(c)}
            if any(k != v for k, v in raw.items()):
                rule["values"] = {k: v for k, v in raw.items() if k != v}
            return rule
    dates = [c for c in df.columns if roles[c] == "date"]
    if dates:
        parsed = pd.to_datetime(df[dates[0]], errors="coerce").dropna()
        cut = parsed.quantile(0.8).normalize()
        notes.append(f"split: a time cut on {dates[0]!r} at its 80% quantile; the newest 20% test")
        return {"kind": "time", "column": str(dates[0]), "test_from": cut.date().isoformat()}
    notes.append("split: no split or date column, so seeded random fractions 0.8/0.1/0.1")
    return {"kind": "random", "fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}, "seed": 0}


def infer_declaration(path: Path, data_root: Path | None = None) -> Proposal:
    """Propose a declaration for the table at `path` (CSV/TSV/Parquet/JSON Lines)."""
    path = Path(path)
    df = read_sample(path)
    df.columns = [str(c) for c in df.columns]
    roles, notes = {}, []
    for c in df.columns:
        roles[c], why = column_role(df[c])
        notes.append(f"{c}: {roles[c]} ({why})")
    label = _label(df, roles)
    name = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "my_data"
    name = name if re.match(r"^[a-z]", name) else f"data_{name}"
    folder, files = name, [path.name]
    if data_root is not None:
        try:
            rel = path.resolve().relative_to(Path(data_root).resolve())
            folder, files = str(rel.parent), [rel.name]
        except ValueError:
            notes.append(f"files: {path} is not under the data root {data_root}; move it to "
                         f"{Path(data_root) / name}/ (or set data.root)")
    decl: dict = {"title": path.stem, "folder": folder, "files": files}
    delimiter = sniff_delimiter(path)
    if delimiter:
        decl["read"] = {"delimiter": delimiter}
    split = _split(df, roles, notes)
    for role in ("text", "numeric", "categorical"):
        columns = [c for c in df.columns if roles[c] == role and c not in (label, split.get("column"))]
        if columns:
            decl[role] = columns
    images = [c for c in df.columns if roles[c] == "image"]
    if images:
        decl["image"] = {"column": images[0], "kind": "path"}
    ids = [c for c in df.columns if roles[c] == "id"]
    if ids:
        decl["id"] = ids[0]
    if label is None:
        notes.append("label: no column looks like one; set label.column")
        decl["label"] = {"column": "CHANGE_ME"}
    else:
        counts = df[label].dropna().astype(str).value_counts()
        decl["label"] = {"column": label, "classes": {v: v for v in sorted(counts.index)}}
        if len(counts) == 2:
            decl["label"]["positive"] = str(counts.index[-1])
            notes.append(f"label: {label!r}, binary; positive = the rarer value {counts.index[-1]!r} "
                         f"({counts.iloc[-1]} of {counts.sum()} rows)")
        else:
            notes.append(f"label: {label!r}, {len(counts)} classes")
    decl["split"] = split
    if len(df) == SAMPLE_ROWS:
        notes.append(f"only the first {SAMPLE_ROWS} rows were looked at")
    return Proposal(name=name, declaration=decl, notes=notes)


def to_yaml(proposal: Proposal) -> str:
    """The proposal as YAML to paste under `data.declared` (or to save as a file that key names)."""
    import yaml

    head = [f"# finmm data infer: a proposal for {proposal.name!r}; edit it, then run `finmm data check "
            f"{proposal.name}`.", "# Paste it under data.declared in ray_config.yaml, or save the block as a file "
            f"and set data.declared.{proposal.name}: <that file>.",
            "# Remove every column that is not known when a prediction is made (outcomes, payments: leakage).", "#"]
    head += [f"#   {line}" for line in proposal.notes]
    body = yaml.safe_dump({proposal.name: proposal.declaration}, sort_keys=False, allow_unicode=True, width=110)
    return "\n".join(head) + "\n" + body


__all__ = ["Proposal", "column_role", "infer_declaration", "to_yaml"]
