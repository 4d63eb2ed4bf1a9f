"""Raw data-set loaders: every data set is a declaration (`actors.declaration.DatasetDeclaration`).

`SOURCES` holds the built-ins, declared in `builtin.yaml` (`builtin.py`): Banking77 read by the generic loader
(`declared.py`), the others by the parser their declaration names (`german_credit.py`, `lending_club.py`,
`phrasebank.py`, `finfe.py`, `finnl.py`, `stocknet.py`). `source_specs(settings)` adds the data sets declared in
config (`data.declared`, read by the generic loader). `load_source(name, settings)` resolves the data root, checks that
every declared file exists (raising `DataFileError` naming the data set, the file and its public source
otherwise), runs the loader and checks that every record read is accounted for (`SourceTable.check_reconciled`).
"""

from __future__ import annotations

from pathlib import Path

from actors.settings import DATASET_NAMES, DataSection
from actors.sources.base import (
    DataError,
    DataFileError,
    DataRootError,
    DeclarationError,
    DeclaredFileError,
    SourceSpec,
    SourceTable,
)
from actors.sources.builtin import builtin_specs

SOURCES: dict[str, SourceSpec] = builtin_specs()
assert tuple(SOURCES) == DATASET_NAMES, "SOURCES must follow actors.settings.DATASET_NAMES"

__all__ = [
    "SOURCES",
    "DataError",
    "DataFileError",
    "DataRootError",
    "DeclarationError",
    "DeclaredFileError",
    "SourceSpec",
    "SourceTable",
    "load_source",
    "source_specs",
]


def source_specs(settings: DataSection) -> dict[str, SourceSpec]:
    """The one registry: the built-in data sets, then those declared under `settings.declared`."""
    from actors.sources.declared import declared_spec

    return SOURCES | {name: declared_spec(name, block) for name, block in settings.declared.items()}


def load_source(name: str, settings: DataSection, root: Path | None = None) -> SourceTable:
    """Load data set `name` from `root` (default: `resolve_data_root(settings.root)`)."""
    from actors.data_root import resolve_data_root

    specs = source_specs(settings)
    if name not in specs:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(specs)} (declare your own under "
                        f"data.declared)")
    spec = specs[name]
    root = resolve_data_root(settings.root) if root is None else Path(root)
    folder = spec.folder_path(root)
    for rel in spec.required_files(root):
        spec.require_file(folder / rel)
    table = spec.load(root, settings)
    table.check_reconciled()
    return table
