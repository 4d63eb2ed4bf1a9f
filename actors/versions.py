"""Versions of the fitted preprocessing state, so that prepared shards and trained bundles are never mixed up.

Two kinds of state turn raw values into what a model was trained on:

- the **tokenizer** (`<output_dir>/tokenizer.json`): its vocabulary maps text to token ids, shared by every
  text data set. Its version is `tok-` + the first 16 hex digits of the SHA-256 of its JSON with the
  `truncation` and `padding` settings taken out (those change where a sequence stops, not which id a word
  gets), so a copy, or the same vocabulary saved again, has the same version. `tokenizer.version.json` next
  to it records where it came from (the data sets its CJK extension was counted over, the settings).
- the **fitted tabular state** of each data set (`TabularState`: means, stds, vocabularies, bins), version
  `tab-` + 16 hex digits of the SHA-256 of its canonical JSON.

`finmm prepare` writes both into every manifest (`tokenizer`, `state.tabular.version`); training records them
in the bundle (`preprocessing_state.json` -> `versions`). `check_prepared` (training), `check_bundle_data`
(evaluation) and `check_bundle_tokenizer` (serving) compare them and raise `VersionMismatchError`, naming
both versions and the fix, instead of feeding a model ids or scales it never saw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actors.manifest import MANIFEST, TOKENIZER, sha256_file
from actors.tabular import TabularState

TOKENIZER_VERSION_FILE = "tokenizer.version.json"
"""Provenance of `<output_dir>/tokenizer.json`: version, kind, corpora, settings, when it was built."""
BUILT = "built"
"""Kind of a tokenizer `prepare` built from the train text of its corpora."""
BASE = "base"
"""Kind of the base tokenizer `prepare` writes for tabular-only data (replaced by the first text prepare)."""
PINNED = "pinned"
"""Kind of a tokenizer.json `prepare` found without provenance (copied in, or from before versioning): kept."""


class VersionMismatchError(ValueError):
    """Prepared data and a model (or two prepared data sets) were made with different tokenizers or fitted
    tabular states; the message names both versions and how to make them agree."""


def _digest(obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def tokenizer_version(tokenizer: str | Path | Any) -> str:
    """`tok-<16 hex>` of a tokenizer.json path, its JSON text, or a `tokenizers.Tokenizer`."""
    if hasattr(tokenizer, "to_str"):
        text = tokenizer.to_str()
    elif isinstance(tokenizer, Path) or (isinstance(tokenizer, str) and not tokenizer.lstrip().startswith("{")):
        text = Path(tokenizer).read_text(encoding="utf-8")
    else:
        text = tokenizer
    spec = {k: v for k, v in json.loads(text).items() if k not in ("truncation", "padding")}
    return "tok-" + _digest(spec)


def tabular_version(state: TabularState | Mapping[str, Any]) -> str:
    """`tab-<16 hex>` of a fitted `TabularState` (or its dict, e.g. a manifest's `state.tabular`)."""
    if not isinstance(state, TabularState):
        state = TabularState.from_dict(state)
    return "tab-" + _digest(json.loads(state.to_json()))


# ------------------------------------------------------------------------------ the prepared tokenizer


def write_tokenizer_record(output_dir: str | Path, kind: str, corpora: Sequence[str] = (),
                           info: Mapping[str, Any] | None = None) -> dict:
    """Write `tokenizer.version.json` for the tokenizer.json now in `output_dir`; returns the record."""
    path = Path(output_dir) / TOKENIZER
    record = {"version": tokenizer_version(path), "kind": kind, "corpora": list(corpora),
              "built": datetime.now(UTC).isoformat(), **dict(info or {})}
    tmp = Path(output_dir) / (TOKENIZER_VERSION_FILE + ".partial")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(Path(output_dir) / TOKENIZER_VERSION_FILE)
    return record


def tokenizer_record(output_dir: str | Path) -> dict | None:
    """What is known of `<output_dir>/tokenizer.json`: its provenance record with the version computed from the
    file as it is now (a tokenizer.json without a record is `pinned`); None when there is no tokenizer.json."""
    path = Path(output_dir) / TOKENIZER
    if not path.exists():
        return None
    record_path = Path(output_dir) / TOKENIZER_VERSION_FILE
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.exists() else {}
    version = tokenizer_version(path)
    if record.get("version") != version:  # no record, or the file was replaced after it was written
        record = {"kind": PINNED, "corpora": []}
    return record | {"version": version}


def _describe(record: Mapping[str, Any] | None) -> str:
    if not record:
        return "an unrecorded tokenizer"
    corpora = record.get("corpora") or []
    origin = f"built from {', '.join(corpora)}" if corpora else record.get("kind", "unknown origin")
    return f"tokenizer {record.get('version')} ({origin})"


def manifest_tokenizer_version(output_dir: str | Path, manifest: Mapping[str, Any]) -> str | None:
    """The tokenizer version a manifest was prepared with. A manifest from before versioning records only the
    SHA-256 of the tokenizer.json bytes (`state.text.sha256`): if that still matches the file in `output_dir`,
    the file's version is the answer; otherwise None (unknown)."""
    recorded = (manifest.get("tokenizer") or {}).get("version")
    if recorded:
        return recorded
    sha = ((manifest.get("state") or {}).get("text") or {}).get("sha256")
    path = Path(output_dir) / TOKENIZER
    if sha and path.exists() and sha256_file(path) == sha:
        return tokenizer_version(path)
    return None


def _manifest(output_dir: Path, dataset: str) -> dict:
    return json.loads((output_dir / dataset / MANIFEST).read_text(encoding="utf-8"))


def check_prepared(output_dir: str | Path, datasets: Sequence[str]) -> dict | None:
    """Before training: every text data set in `datasets` was tokenised with `<output_dir>/tokenizer.json` as it
    is now. Returns the tokenizer record; raises `VersionMismatchError` naming both versions and the fix."""
    output_dir = Path(output_dir)
    current = tokenizer_record(output_dir)
    for name in dict.fromkeys(datasets):
        if not (output_dir / name / MANIFEST).exists():
            continue
        manifest = _manifest(output_dir, name)
        if "text" not in manifest.get("modalities", []):
            continue  # no token ids in these shards
        have = manifest_tokenizer_version(output_dir, manifest)
        if current is None or have != current["version"]:
            raise VersionMismatchError(
                f"data set {name!r} in {output_dir} was prepared with "
                f"{_describe(manifest.get('tokenizer')) if have else 'a tokenizer of unknown version'}, but "
                f"{output_dir / TOKENIZER} is {_describe(current) if current else 'missing'}: its token ids would "
                f"not mean what the model reads. Fix: re-prepare it with the tokenizer there now (`finmm prepare "
                f"--datasets {name}`), or pin the one it was prepared with (copy that tokenizer.json, e.g. a "
                f"bundle's, to {output_dir / TOKENIZER}) and re-prepare the others"
            )
    return current


def check_init_bundle(output_dir: str | Path, bundle_dir: str | Path, bundle_state: Mapping[str, Any] | None) -> None:
    """Before finetuning from a bundle: it was trained with the tokenizer now in `output_dir`, and with the
    fitted tabular state of each data set the shards were prepared with (when the bundle records them)."""
    versions = (bundle_state or {}).get("versions") or {}
    tok = (versions.get("tokenizer") or {}).get("version")
    current = tokenizer_record(output_dir)
    if tok and current and tok != current["version"]:
        raise VersionMismatchError(
            f"{bundle_dir} was trained with {_describe(versions['tokenizer'])}, but {Path(output_dir) / TOKENIZER} "
            f"is {_describe(current)}. Fix: pin the bundle's tokenizer (copy {Path(bundle_dir) / TOKENIZER} to "
            f"{Path(output_dir) / TOKENIZER}) and re-prepare the data sets you train on, or finetune from a "
            f"bundle trained on this prepared data (finetune.init_from)"
        )
    _check_tabular(output_dir, bundle_dir, versions.get("tabular") or {})


def _check_tabular(output_dir: str | Path, bundle_dir: str | Path, bundle_tabular: Mapping[str, str],
                   datasets: Sequence[str] | None = None) -> None:
    for name, version in bundle_tabular.items():
        if datasets is not None and name not in datasets:
            continue
        path = Path(output_dir) / name / MANIFEST
        if not path.exists():
            continue
        state = (_manifest(Path(output_dir), name).get("state") or {}).get("tabular")
        if not state:
            continue
        have = tabular_version(state)
        if have != version:
            raise VersionMismatchError(
                f"the tabular features of {name!r} in {output_dir} were scaled and coded with fitted state {have} "
                f"(fitted on {state.get('fitted_rows')} {state.get('fitted_on')} rows, prepared "
                f"{_manifest(Path(output_dir), name).get('created')}), but {bundle_dir} was trained with {version}. "
                f"Fix: use the prepared data the bundle was trained on, or train a bundle on this data "
                f"(`finmm finetune`); re-preparing with other rows or settings refits the state"
            )


def check_bundle_data(output_dir: str | Path, bundle_dir: str | Path, bundle_state: Mapping[str, Any] | None,
                      dataset: str) -> None:
    """Before scoring a bundle on a prepared data set: the shards' token ids come from the bundle's tokenizer and
    their tabular features from the bundle's fitted state. A bundle without versions is not checked."""
    versions = (bundle_state or {}).get("versions") or {}
    manifest = _manifest(Path(output_dir), dataset)
    tok = (versions.get("tokenizer") or {}).get("version")
    if tok and "text" in manifest.get("modalities", []):
        have = manifest_tokenizer_version(output_dir, manifest)
        if have != tok:
            raise VersionMismatchError(
                f"data set {dataset!r} in {output_dir} was prepared with "
                f"{_describe(manifest.get('tokenizer')) if have else 'a tokenizer of unknown version'}, but "
                f"{bundle_dir} was trained with {_describe(versions['tokenizer'])}. Fix: pin the bundle's tokenizer "
                f"(copy {Path(bundle_dir) / TOKENIZER} to {Path(output_dir) / TOKENIZER}) and re-prepare "
                f"(`finmm prepare --datasets {dataset}`), or score a bundle trained on this prepared data"
            )
    _check_tabular(output_dir, bundle_dir, versions.get("tabular") or {}, [dataset])


def check_bundle_tokenizer(bundle_dir: str | Path, bundle_state: Mapping[str, Any] | None) -> None:
    """When loading a bundle to serve: its tokenizer.json is the one it was trained with."""
    recorded = (((bundle_state or {}).get("versions") or {}).get("tokenizer") or {}).get("version")
    path = Path(bundle_dir) / TOKENIZER
    if recorded and path.exists():
        have = tokenizer_version(path)
        if have != recorded:
            raise VersionMismatchError(
                f"{path} is tokenizer {have}, but the bundle's model was trained with tokenizer {recorded} "
                f"(preprocessing_state.json -> versions): requests would be tokenised into ids the model never "
                f"saw. Fix: put back the bundle's own tokenizer.json (copy it from the prepared data or the "
                f"checkpoint it was exported from), or export the bundle again"
            )


def bundle_versions(output_dir: str | Path, tabular_datasets: Sequence[str]) -> dict:
    """What a bundle records (`preprocessing_state.json` -> `versions`): the tokenizer of `output_dir` (version,
    kind, corpora) and the version of the fitted tabular state of each of `tabular_datasets` (the batch layout's)
    as prepared there."""
    record = tokenizer_record(output_dir)
    tok = {k: record[k] for k in ("version", "kind", "corpora") if k in record} if record else None
    tabular = {}
    for name in tabular_datasets:
        path = Path(output_dir) / name / MANIFEST
        state = (_manifest(Path(output_dir), name).get("state") or {}).get("tabular") if path.exists() else None
        if state:
            tabular[name] = tabular_version(state)
    return {"tokenizer": tok, "tabular": tabular}
