"""What `prepare` writes next to the shards: the manifest, the summary it returns, reconciliation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
REJECTED = "rejected.parquet"
TOKENIZER = "tokenizer.json"
MANIFEST_VERSION = 1

REJECTED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("stage", pa.string()),  # "load" (the raw-file loader) or "preprocess" (an actor)
        ("reason", pa.string()),
        ("source", pa.string()),  # file:line for loader rejects
        ("record", pa.string()),  # JSON of the original fields (loader) or {"text": ...} (actor)
    ]
)


class ReconcileError(RuntimeError):
    """Rows read do not equal rows written + rejected + sliced out: something was silently dropped."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def schema_to_json(schema: pa.Schema) -> list[dict]:
    """[{"name", "type", "nullable"}] for every field, e.g. {"name": "input_ids", "type": "list<item: int32>"}."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


@dataclass
class PrepareSummary:
    """One data set's outcome of `prepare`, as the CLI prints it."""

    dataset: str
    output_dir: str
    n_read: int
    n_sliced_out: int
    splits: dict[str, int]
    """Rows written per split."""
    rejected: dict[str, int]
    """Rejected rows by reason, loader and preprocessing together."""
    unk_rates: dict[str, float] = field(default_factory=dict)
    """[UNK] share of the text tokens the model sees (first max_length per row): "base" (tokenizer as
    configured) and "extended" (with the added CJK characters)."""
    wall_s: float = 0.0

    @property
    def n_written(self) -> int:
        return sum(self.splits.values())

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict:
        return asdict(self) | {"n_written": self.n_written, "n_rejected": self.n_rejected}

    def line(self) -> str:
        """One human-readable line: `banking77: train 9003, validation 1000, test 3080 | rejected 0 | ...`."""
        splits = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        rejected = ", ".join(f"{k} {v}" for k, v in self.rejected.items()) or "0"
        unk = ""
        if self.unk_rates:
            unk = f" | [UNK] {self.unk_rates['base']:.2%} -> {self.unk_rates['extended']:.2%}"
        return f"{self.dataset}: {splits} | rejected {rejected}{unk} | {self.wall_s:.1f}s"


def reconcile(dataset: str, n_read: int, n_sliced_out: int, written: int, rejected: int) -> None:
    """Raise ReconcileError unless n_read == written + rejected + sliced out."""
    if n_read != written + rejected + n_sliced_out:
        raise ReconcileError(
            f"data set {dataset!r}: {n_read} rows read, but {written} written + {rejected} rejected + "
            f"{n_sliced_out} sliced out = {written + rejected + n_sliced_out}"
        )


def write_manifest(folder: Path, manifest: dict) -> Path:
    manifest = {"version": MANIFEST_VERSION, "created": datetime.now(UTC).isoformat()} | manifest
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path


def read_manifest(output_dir: str | Path, dataset: str) -> dict:
    """The manifest.json of a prepared data set."""
    return json.loads((Path(output_dir) / dataset / MANIFEST).read_text(encoding="utf-8"))


def actor_rejects(files: list[Path], reject_column: str) -> pd.DataFrame:
    """Rows an actor rejected, read back from the Parquet files of the rejected partition."""
    frames = []
    for f in files:
        names = pq.read_schema(f).names
        t = pq.read_table(f, columns=[c for c in ("id", "split", reject_column, "text") if c in names]).to_pandas()
        texts = t["text"].tolist() if "text" in t.columns else [None] * len(t)
        frames.append(
            pd.DataFrame(
                {
                    "id": t["id"].astype(object),
                    "split": t["split"].astype(object),
                    "stage": "preprocess",
                    "reason": t[reject_column].astype(object),
                    "source": None,
                    "record": [json.dumps({"text": x}, ensure_ascii=False) for x in texts],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REJECTED_SCHEMA.names)


def loader_rejects(rejected: pd.DataFrame) -> pd.DataFrame:
    """A loader's `rejected` frame in the rejected.parquet layout (original fields kept as JSON)."""
    meta = {"reason", "source", "source_row"}
    fields = [c for c in rejected.columns if c not in meta]
    records = [
        json.dumps(
            {c: (None if pd.isna(v) else str(v)) for c, v in zip(fields, values, strict=False)}, ensure_ascii=False
        )
        for values in rejected[fields].itertuples(index=False, name=None)
    ]
    n = len(rejected)
    return pd.DataFrame(
        {
            "id": rejected["id"].astype(object) if "id" in rejected.columns else [None] * n,
            "split": rejected["split"].astype(object) if "split" in rejected.columns else [None] * n,
            "stage": ["load"] * n,
            "reason": rejected["reason"].astype(object) if n else [],
            "source": rejected["source"].astype(object) if "source" in rejected.columns else [None] * n,
            "record": records,
        }
    )
