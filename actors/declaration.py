"""A data set declared in config: the user's own table, read with no Python (issue 16).

A declaration lives under `data.declared.<name>` in ray_config.yaml (or in a YAML file that key names). It
says which files to read, what each column is, how rows are split and how the label is coded;
`actors/sources/declared.py` turns it into a `SourceTable`. The seven built-in data sets are declarations of
this schema too (actors/sources/builtin.yaml); those whose raw format needs Python name their `parser`. This
module is the schema only (no pandas): every field documents itself, unknown keys are refused.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
"""A declared name is a folder name under data.output_dir: lower-case letters, digits, underscores."""

SPLITS = ("train", "validation", "test")
"""The split names finetuning and evaluation read (k-fold rules name theirs fold0, fold1, ...)."""


class _Strict(BaseModel):
    # YAML reads `1` and `2011-01-01` as an int and a date; a label or split value is compared as text
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, coerce_numbers_to_str=True)


class FileSettings(_Strict):
    encoding: str = "utf-8"
    """Text encoding of CSV/TSV/JSON Lines files (any name Python's codecs know, e.g. latin-1, cp1252)."""
    delimiter: str | None = None
    """CSV field separator (one character). Empty: `,` for .csv, tab for .tsv/.tab."""
    format: Literal["csv", "tsv", "parquet", "jsonl"] | None = None
    """File format. Empty: from each file's suffix (.csv, .tsv/.tab, .parquet/.pq, .jsonl/.ndjson)."""
    na_values: list[str] = Field(default_factory=lambda: [""])
    """CSV/TSV cells read as missing. The default is only the empty cell, so "NA" or "None" stay text."""
    columns: list[str] | None = None
    """CSV/TSV files without a header row: their column names, in file order (the first line is then a row,
    line 1). Empty: the first line is the header."""

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError(f"the delimiter must be one character, got {value!r} (use \\t for a tab)")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}; e.g. utf-8, latin-1, cp1252") from None
        return value


class ImageColumn(_Strict):
    column: str
    """The column holding each row's image."""
    kind: Literal["path", "bytes", "base64"] = "path"
    """`path`: a file path relative to the data set folder (a missing file rejects the row); `bytes`: the
    PNG/JPEG bytes themselves (Parquet binary); `base64`: those bytes base64-encoded as text."""


class LabelColumn(_Strict):
    column: str
    """The column holding the label."""
    classes: dict[str, str] = Field(default_factory=dict)
    """Raw value -> class name, e.g. `{"Fully Paid": good, "Charged Off": bad}`; several values may share a
    class. A row whose value is not listed is rejected with the value's column named. Empty: every distinct
    value seen is its own class (names = the values, sorted)."""
    classes_file: str | None = None
    """A JSON file (relative to the data set folder) holding an array of the class names in label-id order,
    e.g. Banking77's `categories.json`; each raw value is its class's name. Instead of `classes`."""
    positive: str | None = None
    """Binary tasks: the class that is 1 (the risk: default, fraud). Needs exactly two classes; the other
    class is 0. Empty: multi-class, class ids in the order the classes first appear in `classes` (or sorted)."""

    @model_validator(mode="after")
    def _positive_is_a_class(self) -> LabelColumn:
        if self.classes_file is not None:
            if self.classes:
                raise ValueError("give label.classes or label.classes_file, not both")
            _check_relative(self.classes_file, "label.classes_file")
        names = list(dict.fromkeys(self.classes.values()))
        if self.positive is not None and names:
            if self.positive not in names:
                raise ValueError(f"label.positive {self.positive!r} is not one of the classes {names}")
            if len(names) != 2:
                raise ValueError(f"label.positive makes the task binary, but label.classes names {len(names)} "
                                 f"classes {names}; map the raw values onto two")
        return self

    def class_names(self) -> list[str] | None:
        """Class names in id order, or None when they come from the data or from `classes_file`."""
        if not self.classes:
            return None
        names = list(dict.fromkeys(self.classes.values()))
        if self.positive is not None:
            names = [n for n in names if n != self.positive] + [self.positive]
        return names


class ColumnSplit(_Strict):
    kind: Literal["column"]
    """The split is already in a column of the file."""
    column: str
    """The column that holds it."""
    values: dict[str, Literal["train", "validation", "test"]] = Field(default_factory=dict)
    """Raw value -> split, e.g. `{dev: validation}`. Values not listed must already be train, validation or
    test; any other value rejects the row."""


class HashHoldout(_Strict):
    """Validation rows carved from the train rows by an md5 bucket, so that they need no random state."""

    column: str | None = None
    """The column hashed (its text). Empty: the row id."""
    buckets: list[int] = Field(default_factory=lambda: [0])
    """The buckets of `int(md5(value), 16) % of` that become validation."""
    of: int = Field(10, ge=2, le=1000)
    """Number of buckets."""

    @model_validator(mode="after")
    def _buckets_fit(self) -> HashHoldout:
        bad = [b for b in self.buckets if not 0 <= b < self.of]
        if bad:
            raise ValueError(f"validation buckets {bad} are outside 0..{self.of - 1}")
        return self


class FileSplit(_Strict):
    kind: Literal["file"]
    """Each file is one split, e.g. a published `train.csv` and `test.csv`."""
    files: dict[str, Literal["train", "validation", "test"]]
    """File (as listed under `files`, or a path a glob matched) -> its split. Every file read needs one."""
    validation: HashHoldout | None = None
    """Validation rows held out of the train files' rows by a hash (as EVAL.md's Banking77 and FinFE). Empty:
    only a file mapped to validation gives validation rows."""


class TimeSplit(_Strict):
    kind: Literal["time"]
    """Cut on a date column: the past trains, the future tests."""
    column: str
    """The date column (anything pandas parses; set `format` for an ambiguous one). An unparseable date
    rejects the row."""
    test_from: date
    """Rows dated on or after this day are test."""
    validation_from: date | None = None
    """Rows dated on or after this day (and before test_from) are validation. Empty: validation is the
    `validation_buckets` share of the earlier rows, by a hash of their id."""
    validation_buckets: int = Field(1, ge=0, le=9)
    """With no validation_from: how many of 10 md5 buckets of the id go to validation (1 = about 10%)."""
    format: str | None = None
    """strftime format of the dates, e.g. `%d/%m/%Y`. Empty: pandas infers it."""
    train_from: date | None = None
    """Rows dated before this day are rejected (outside the window). Empty: no lower bound."""
    test_until: date | None = None
    """Rows dated on or after this day are rejected (outside the window). Empty: no upper bound."""

    @model_validator(mode="after")
    def _ordered(self) -> TimeSplit:
        days = [("train_from", self.train_from), ("validation_from", self.validation_from),
                ("test_from", self.test_from), ("test_until", self.test_until)]
        days = [(k, d) for k, d in days if d is not None]
        for (k1, d1), (k2, d2) in zip(days, days[1:], strict=False):
            if d1 >= d2:
                raise ValueError(f"split.{k1} {d1} must be before split.{k2} {d2}")
        return self


class HashSplit(_Strict):
    kind: Literal["hash"]
    """md5 of a column's text into buckets: the same value always lands in the same split (use a customer
    id to keep each customer on one side)."""
    column: str | None = None
    """The column hashed. Empty: the row id."""
    buckets: int = Field(10, ge=2, le=1000)
    """Number of buckets (`int(md5(value), 16) % buckets`, as EVAL.md's splits)."""
    test: list[int] = Field(default_factory=lambda: [0])
    """Buckets that are test."""
    validation: list[int] = Field(default_factory=lambda: [1])
    """Buckets that are validation; every other bucket is train."""

    @model_validator(mode="after")
    def _buckets_fit(self) -> HashSplit:
        bad = [b for b in self.test + self.validation if not 0 <= b < self.buckets]
        if bad:
            raise ValueError(f"split buckets {bad} are outside 0..{self.buckets - 1}")
        if set(self.test) & set(self.validation):
            raise ValueError(f"buckets {sorted(set(self.test) & set(self.validation))} are both test and validation")
        return self


class RandomSplit(_Strict):
    kind: Literal["random"]
    """A seeded random split with fractions (over the accepted rows, in file order)."""
    fractions: dict[Literal["train", "validation", "test"], float] = Field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    """Share of each split; they must sum to 1."""
    seed: int = 0
    """Seed of the permutation: the same seed and rows give the same split."""

    @model_validator(mode="after")
    def _sums_to_one(self) -> RandomSplit:
        if any(f < 0 for f in self.fractions.values()) or abs(sum(self.fractions.values()) - 1) > 1e-6:
            raise ValueError(f"split.fractions {self.fractions} must be >= 0 and sum to 1")
        return self


class KFoldSplit(_Strict):
    kind: Literal["kfold"]
    """Stratified k-fold (scikit-learn's StratifiedKFold, shuffled): a row's split is `fold<k>`, the fold in
    which it is a test row (as German Credit's)."""
    folds: int = Field(5, ge=2, le=20)
    """Number of folds."""
    seed: int = 0
    """random_state of the shuffle."""


SplitRule = Annotated[ColumnSplit | FileSplit | TimeSplit | HashSplit | RandomSplit | KFoldSplit,
                      Field(discriminator="kind")]

PARSERS = ("german_credit", "lending_club", "financial_phrasebank", "fincuge_finfe", "fincuge_finnl", "stocknet")
"""The Python readers of raw formats the generic loader cannot read, one per built-in data set that needs one
(actors/sources/builtin.yaml names them; actors/sources/builtin.py resolves the name)."""
BUILTIN = "builtin"
"""Validation context key: True while actors/sources/builtin.yaml is read (only built-ins may name a parser)."""


class DatasetDeclaration(_Strict):
    """One data set: its files, the role of each column, its split and its label. Users declare theirs under
    `data.declared`; the seven built-ins are declared the same way in actors/sources/builtin.yaml."""

    title: str = ""
    """A human-readable title for manifests and reports. Empty: the name."""
    source_url: str = ""
    """Where the files come from (a URL, a paper); named when a file is missing or unreadable."""
    license: str = ""
    """The files' licence, for reports."""
    folder: str | None = None
    """The data set's folder under the data root. Empty: the data set's name."""
    files: list[str] = Field(min_length=1)
    """Files or globs relative to the folder (e.g. `loans_*.csv`), read in sorted order and concatenated;
    each needs every declared column."""
    read: FileSettings = Field(default_factory=FileSettings)
    """How the files are parsed (format, encoding, delimiter)."""
    parser: Literal[PARSERS] | None = None  # type: ignore[valid-type]
    """Built-ins only: the Python reader of a raw format the generic loader cannot read (actors/sources/<parser>
    .py). It reads `files` and follows the roles, label coding and split rule declared here. Empty: the generic
    loader (every data set of your own)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Built-ins only: the parser's own settings (thresholds, side files), documented in its module."""
    text: list[str] = Field(default_factory=list)
    """Text columns. One column is the text as it is; several are joined as `name: value | name: value`,
    empty values left out."""
    strip_text: bool = True
    """Strip leading and trailing whitespace from a single text column (set false to keep the file's text
    exactly, as Banking77's hash split needs). Several columns are always stripped."""
    numeric: list[str] = Field(default_factory=list)
    """Numeric columns (missing is allowed; a value that is not a number rejects the row)."""
    categorical: list[str] = Field(default_factory=list)
    """Categorical columns, compared as text (missing is allowed)."""
    image: ImageColumn | None = None
    """The image column, if any."""
    keep: list[str] = Field(default_factory=list)
    """Columns carried into the rows as text but not fed to a model (a date for reports, the label's raw
    value), after the input columns."""
    id: str | None = None
    """The column with a unique row id. Empty: an id is generated by `id_format`."""
    id_format: str = "{file}:{row}"
    """The generated id when `id` is empty: a Python format string over `file` (the path under the folder),
    `stem` (that file's name without its suffix) and `row` (its line or record number), e.g. `{stem}-{row}`
    or `row{row:04d}`."""
    label: LabelColumn | None = None
    """The label column and its coding. Empty: unlabelled rows (label -1), e.g. text for pretraining only."""
    split: SplitRule
    """How rows are split into train/validation/test (or folds)."""
    task: str | None = None
    """The task this data set feeds: a built-in one (e.g. credit_risk) or one under data.tasks. It joins that
    task's data sets: `finmm finetune --task <task>` trains on it, `finmm evaluate` scores it and the task's
    endpoint serves it. Empty: none yet."""
    max_invalid_share: float = Field(0.5, ge=0, le=1)
    """A file in which more than this share of rows has a non-numeric value in one numeric column is refused
    as a whole (the column is most likely not numeric, or the delimiter is wrong)."""

    @field_validator("folder")
    @classmethod
    def _relative_folder(cls, value: str | None) -> str | None:
        if value is not None:
            _check_relative(value, "folder")
        return value

    @field_validator("files")
    @classmethod
    def _relative_files(cls, value: list[str]) -> list[str]:
        for pattern in value:
            _check_relative(pattern, "files")
        return value

    @field_validator("id_format")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        try:
            value.format(file="a.csv", stem="a", row=1)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"id_format {value!r} may use {{file}}, {{stem}} and {{row}} only ({e})") from None
        if "{row" not in value:
            raise ValueError(f"id_format {value!r} needs {{row}}, or the ids of one file are not unique")
        return value

    @model_validator(mode="after")
    def _parser_only_for_builtins(self, info: ValidationInfo) -> DatasetDeclaration:
        builtin = bool(info.context and info.context.get(BUILTIN))
        if (self.parser is not None or self.options) and not builtin:
            raise ValueError("parser and options name the Python reader of a built-in data set's raw format "
                             "(actors/sources/builtin.yaml); a data set of your own is read by the generic loader: "
                             "remove them")
        return self

    @model_validator(mode="after")
    def _one_role_per_column(self) -> DatasetDeclaration:
        roles: dict[str, list[str]] = {}
        label = self.label.column if self.label is not None else None
        keep = [c for c in self.keep if c != label]  # the label's raw value may be kept (Banking77's category)
        for role, columns in {**self.feature_columns(), "keep": keep}.items():
            for column in columns:
                roles.setdefault(column, []).append(role)
        if self.label is not None:
            roles.setdefault(self.label.column, []).append("label")
        twice = {c: r for c, r in roles.items() if len(r) > 1}
        if twice:
            raise ValueError("a column can have one role only: " + "; ".join(
                f"{c!r} is {' and '.join(r)}" for c, r in twice.items()))
        if not (self.text or self.numeric or self.categorical or self.image):
            raise ValueError("declare at least one input column (text, numeric, categorical or image)")
        if self.label is None and self.task is not None:
            raise ValueError(f"task {self.task!r} needs a label; declare label.column")
        if self.label is None and self.split.kind == "kfold":
            raise ValueError("a stratified k-fold split needs a label; declare label.column or another split")
        return self

    def feature_columns(self) -> dict[str, list[str]]:
        """The input columns by role."""
        return {"text": list(self.text), "numeric": list(self.numeric), "categorical": list(self.categorical),
                "image": [self.image.column] if self.image else []}

    def modalities(self) -> tuple[str, ...]:
        """The modalities its rows carry, as in `SourceSpec.modalities`."""
        out = []
        if self.numeric or self.categorical:
            out.append("tabular")
        if self.text:
            out.append("text")
        if self.image:
            out.append("image")
        return tuple(out)

    def columns_read(self) -> list[str]:
        """Every column the files must have, in declaration order, without repeats."""
        split_columns = [getattr(self.split, "column", None),
                         getattr(getattr(self.split, "validation", None), "column", None)]
        cols = [*self.text, *self.numeric, *self.categorical, *([self.image.column] if self.image else []),
                *self.keep, *([self.id] if self.id else []), *([self.label.column] if self.label else []),
                *[c for c in split_columns if c]]
        return list(dict.fromkeys(cols))


def join_text(columns: list[str], values: list[str | None], strip: bool = True) -> str:
    """A row's text from its text columns: one column as it is; several as `name: value | name: value`, empty
    values left out (training's rule; the served endpoint applies the same one to a request's fields).
    `strip=False` keeps a single column's whitespace (`DatasetDeclaration.strip_text`)."""
    if len(columns) == 1 and not strip:
        return values[0] or ""
    parts = [(v or "").strip() for v in values]
    if len(columns) == 1:
        return parts[0]
    return " | ".join(f"{c}: {v}" for c, v in zip(columns, parts, strict=True) if v)


def _check_relative(path: str, key: str) -> None:
    pure = PurePosixPath(path)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"{key} {path!r} is absolute; give it relative to the data root (data.root / "
                         f"$FINMM_DATA_DIR), so the config works on every machine")
    if ".." in pure.parts:
        raise ValueError(f"{key} {path!r} leaves the data root ('..'); move the files under it")


HEAD_KINDS = ("binary_risk", "multi_class", "movement")
"""The head kinds a task trains: one probability of the positive class, one class of K, or fall/rise."""


class TaskDeclaration(_Strict):
    """One finetune task: the head it trains, the data sets it trains on, where it is served, how its best
    checkpoint is picked. Its class count and class names come from its data sets' label mapping."""

    kind: Literal["binary_risk", "multi_class", "movement"]
    """`binary_risk`: one logit, the probability of the positive class (a default, a fraud), scored by AUC, KS,
    Brier, ECE; `multi_class`: one class of K (softmax), K and the class names from the data, scored by
    accuracy and macro-F1; `movement`: next-period fall (0) or rise (1), scored by accuracy and MCC."""
    datasets: list[str] = Field(default_factory=list)
    """Data sets whose train split trains the task (each is also validated and scored on its own). A declared
    data set whose `task:` names this task joins them."""
    endpoint: str | None = None
    """The HTTP path under /v1/ that serves the task, e.g. `support-intents`. Empty: the task's name with `-`
    for `_`."""
    selection_metric: Literal["auc", "ks", "accuracy", "macro_f1", "mcc"] | None = None
    """Validation metric that picks the exported checkpoint (higher is better). Empty: `auc` for binary_risk,
    `accuracy` otherwise."""
    head: str | None = None
    """The head's name in the model (its `config.heads` key, listed by /v1/models). Empty: the task's name."""
    title: str = ""
    """A human-readable title for reports and OpenAPI. Empty: the name."""

    @field_validator("endpoint")
    @classmethod
    def _path_segment(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z][a-z0-9-]{0,63}$", value):
            raise ValueError(f"endpoint {value!r} must be one path segment: lower-case letters, digits and '-', "
                             f"starting with a letter (it is served at /v1/<endpoint>)")
        return value

    @model_validator(mode="after")
    def _metric_fits_the_kind(self) -> TaskDeclaration:
        allowed = {"binary_risk": ("auc", "ks"), "multi_class": ("accuracy", "macro_f1"),
                   "movement": ("accuracy", "mcc")}[self.kind]
        if self.selection_metric is not None and self.selection_metric not in allowed:
            raise ValueError(f"selection_metric {self.selection_metric!r} is not computed for a {self.kind} task; "
                             f"use one of {', '.join(allowed)}")
        return self

    def metric(self) -> str:
        """The selection metric, defaults applied."""
        return self.selection_metric or ("auc" if self.kind == "binary_risk" else "accuracy")

    def endpoint_path(self, name: str) -> str:
        """The endpoint's path segment, defaults applied."""
        return self.endpoint or name.replace("_", "-")
