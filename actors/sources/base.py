"""Shared types and helpers of the raw data-set loaders.

A loader turns the files of one data set into a `SourceTable`: the accepted rows (with `id`, `split`,
`label` and the modality columns), the rejected rows (every original field as text, a `reason`, and where
they came from), the list of files read and the counts needed to check that nothing was silently dropped.
Loaders are pure pandas: no Ray, no randomness beyond hash- or date-based splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    from actors.settings import DataSection

MODALITIES = ("text", "image", "tabular", "series")

REJECTED_META = ("reason", "source", "source_row")
"""Columns every `rejected` frame has besides the original fields: `reason` (why the row cannot be used),
`source` (`<file>:<line or record>`, relative to the data set folder) and `source_row` (that line/record
number, 1-based)."""


class DataError(Exception):
    """Base class of every error raised while locating or reading raw data."""


class DataRootError(DataError):
    """No raw-data folder could be found."""


class DataFileError(DataError):
    """A source file is missing, unreadable or malformed as a whole."""

    def __init__(self, dataset: str, path: Path, problem: str, source_url: str):
        self.dataset = dataset
        self.path = Path(path)
        self.problem = problem
        self.source_url = source_url
        super().__init__(
            f"data set {dataset!r}: {problem} (file: {self.path}). "
            f"The public source of this data set is {source_url}; see the README.md in the data set "
            f"folder for how the files were obtained and their checksums."
        )


class DeclarationError(DataError):
    """A declared data set (`data.declared.<name>`) that does not match its files: what is wrong, where, and
    how to fix it (the three parts `finmm.run_log.error_block` prints)."""

    def __init__(self, what: str, where: str, fix: str):
        self.what, self.where, self.fix = what, where, fix
        super().__init__(f"{what} (where: {where}; how to fix: {fix})")


class DeclaredFileError(DeclarationError, DataFileError):
    """One file of a declared data set cannot be read as declared (bad encoding or format, a declared column
    missing): both a `DeclarationError` (what, where, how to fix) and a `DataFileError` (data set, file, public
    source), so a built-in read by the generic loader fails as its own loader did."""

    def __init__(self, dataset: str, path: Path, what: str, where: str, fix: str, source_url: str):
        self.dataset, self.path, self.problem, self.source_url = dataset, Path(path), what, source_url
        self.what, self.where, self.fix = what, where, fix
        message = f"{what} (where: {where}; how to fix: {fix})"
        if "http" in source_url:  # a built-in: say where the files come from, as DataFileError does
            message += (f". The public source of this data set is {source_url}; see the README.md in the data "
                        f"set folder for how the files were obtained and their checksums.")
        Exception.__init__(self, message)


@dataclass
class SourceTable:
    """What a loader returns. See the module docstring and docs/data.md."""

    dataset: str
    rows: pd.DataFrame
    rejected: pd.DataFrame
    files: list[Path]
    n_read: int
    n_sliced_out: int = 0
    classes: list[str] | None = None
    """Class names in label-id order, where the loader knows them (declared data sets); None otherwise."""

    def check_reconciled(self) -> None:
        """Raise `DataError` unless every record read is accounted for, and ids are unique."""
        total = len(self.rows) + len(self.rejected) + self.n_sliced_out
        if self.n_read != total:
            raise DataError(
                f"data set {self.dataset!r}: {self.n_read} records read but {len(self.rows)} accepted + "
                f"{len(self.rejected)} rejected + {self.n_sliced_out} sliced out = {total}"
            )
        if not self.rows["id"].is_unique:
            raise DataError(f"data set {self.dataset!r}: duplicate ids in accepted rows")

    def split_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rows["split"].value_counts().sort_index().items()}

    def reject_counts(self) -> dict[str, int]:
        if self.rejected.empty:
            return {}
        return {str(k): int(v) for k, v in self.rejected["reason"].value_counts().items()}


@dataclass(frozen=True)
class SourceSpec:
    name: str
    title: str
    files: tuple[str, ...]
    source_url: str
    license: str
    modalities: tuple[str, ...]
    schema: pa.Schema = field(compare=False)
    load: Callable[[Path, DataSection], SourceTable] = field(compare=False)
    list_files: Callable[[Path], tuple[str, ...]] | None = field(default=None, compare=False)
    """For data sets whose file list is in their own index files (StockNet's StockTable): given the data
    set's folder, the files it needs beyond `files`. `files` then holds the index files themselves.
    Declared data sets list their globs' matches here."""
    folder: str | None = None
    """The data set's folder under the data root; None: its name (every built-in)."""

    def folder_path(self, root: Path) -> Path:
        return Path(root) / (self.folder or self.name)

    def file_error(self, path: Path, problem: str) -> DataFileError:
        return DataFileError(self.name, path, problem, self.source_url)

    def require_file(self, path: Path) -> None:
        """DataFileError naming `path` unless it is a regular file."""
        if not path.is_file():
            raise self.file_error(path, "file not found" if not path.exists() else "not a regular file")

    def required_files(self, root: Path) -> tuple[str, ...]:
        """Every file (relative to `root/<name>`) that loading reads; raises DataFileError if `files` lack one."""
        folder = self.folder_path(root)
        for rel in self.files:
            self.require_file(folder / rel)
        return self.files + (self.list_files(folder) if self.list_files else ())


# --------------------------------------------------------------------------------------------- helpers


def md5_bucket(text: str) -> int:
    """`int(md5(text as UTF-8), 16) % 10`: the hash bucket that EVAL.md's splits use."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 10


def rejected_frame(
    fields: pd.DataFrame, reasons: Sequence[str] | pd.Series, file: str, source_rows: Sequence[int] | pd.Series
) -> pd.DataFrame:
    """Build a `rejected` frame: the original fields as str (missing stays missing), plus the meta columns."""
    out = pd.DataFrame(index=range(len(fields)))
    for col in fields.columns:
        out[str(col)] = pd.Series([_as_text(v) for v in fields[col]], dtype="str")
    rows = pd.Series(list(source_rows), dtype="int64")
    out["reason"] = pd.Series(list(reasons), dtype="str")
    out["source"] = (file + ":" + rows.astype(str)).astype("str")
    out["source_row"] = rows
    return out


def _as_text(v: object) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v if isinstance(v, str) else str(v)


def empty_rejected(field_names: Sequence[str]) -> pd.DataFrame:
    return rejected_frame(pd.DataFrame({c: pd.Series([], dtype="str") for c in field_names}), [], "", [])


def concat_rejected(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)] or list(frames[:1])
    return pd.concat(frames, ignore_index=True) if frames else empty_rejected([])


def slice_per_split(rows: pd.DataFrame, max_rows: int | None) -> tuple[pd.DataFrame, int]:
    """Keep at most `max_rows` rows of each split, evenly spaced through the split in the frame's
    (deterministic) order, and count the rest. Evenly spaced, not the first rows: source files are often
    sorted (Banking77 and PhraseBank by class, StockNet by date), so the first rows would hold one class or
    one day. Returns (kept rows, number left out)."""
    rows = rows.reset_index(drop=True)
    if max_rows is None:
        return rows, 0
    keep = np.zeros(len(rows), dtype=bool)
    for positions in rows.groupby("split", sort=False).indices.values():
        if len(positions) <= max_rows:
            keep[positions] = True
        else:
            keep[positions[np.linspace(0, len(positions) - 1, max_rows).round().astype(int)]] = True
    return rows[keep].reset_index(drop=True), int((~keep).sum())


def conform(rows: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """Order `rows` as the declared schema (raising if a column is missing) and fix the core dtypes."""
    missing = [n for n in schema.names if n not in rows.columns]
    if missing:
        raise DataError(f"loader produced no column(s) {missing}")
    rows = rows[list(schema.names)].reset_index(drop=True).copy()
    rows["id"] = rows["id"].astype("str")
    rows["split"] = rows["split"].astype("str")
    rows["label"] = rows["label"].astype("int64")
    return rows


def core_fields() -> list[pa.Field]:
    return [
        pa.field("id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.int64(), nullable=False),
    ]


def require_columns(file_error: Callable[[Path, str], DataFileError], path: Path, got: Sequence[str],
                    expected: Sequence[str]) -> None:
    """`file_error(path, problem)` (a `DataFileError`, e.g. `SourceSpec.file_error`) unless the columns are these."""
    if list(got) != list(expected):
        raise file_error(path, f"expected columns {list(expected)}, found {list(got)}")


def read_json_list(file_error: Callable[[Path, str], DataFileError], path: Path) -> list:
    """A UTF-8 file holding one JSON array; decoding/parsing problems → `file_error(path, problem)` (a
    `DataFileError`, e.g. `SourceSpec.file_error`) with the position."""
    import json

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise file_error(path, f"not valid UTF-8 at byte {e.start}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise file_error(path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    if not isinstance(data, list):
        raise file_error(path, f"expected a JSON array, found {type(data).__name__}")
    return data
