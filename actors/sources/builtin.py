"""The built-in data sets: their declarations (builtin.yaml) and the registry of the parsers some of them name.

Every built-in is a `DatasetDeclaration`, validated like a user's block. One without a `parser` is read by the
generic loader (`declared.py`); one with a `parser` is read by that module's `PARSER`, which takes its files,
roles, label coding and split rule from the declaration and does only what the raw format needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from actors.declaration import BUILTIN, DatasetDeclaration
from actors.settings import DATASET_NAMES
from actors.sources.base import DataFileError, SourceSpec, SourceTable

if TYPE_CHECKING:  # pragma: no cover
    from actors.settings import DataSection

BUILTIN_FILE = Path(__file__).with_name("builtin.yaml")

PARSER_MODULES = {
    "german_credit": "actors.sources.german_credit",
    "lending_club": "actors.sources.lending_club",
    "financial_phrasebank": "actors.sources.phrasebank",
    "fincuge_finfe": "actors.sources.finfe",
    "fincuge_finnl": "actors.sources.finnl",
    "stocknet": "actors.sources.stocknet",
}
"""Parser name (a declaration's `parser`, `actors.declaration.PARSERS`) -> the module holding its `PARSER`."""


@dataclass(frozen=True)
class Parser:
    """What a parser module gives the registry; the declaration gives the rest of the `SourceSpec`."""

    load: Callable[[Path, DataSection], SourceTable]
    schema: pa.Schema
    side_files: tuple[str, ...] = ()
    """Files read besides the declaration's `files` (PhraseBank's all-agree list), checked up front too."""
    list_files: Callable[[Path], tuple[str, ...]] | None = None
    """See `SourceSpec.list_files` (StockNet: the per-ticker files its index files list)."""
    modalities: tuple[str, ...] | None = None
    """When the roles do not say them all (StockNet's series). Empty: `DatasetDeclaration.modalities()`."""


@lru_cache(maxsize=1)
def builtin_declarations() -> dict[str, DatasetDeclaration]:
    """The declarations of builtin.yaml, by name, in `DATASET_NAMES` order."""
    import yaml

    raw = yaml.safe_load(BUILTIN_FILE.read_text(encoding="utf-8"))
    out = {name: DatasetDeclaration.model_validate(block, context={BUILTIN: True}) for name, block in raw.items()}
    if tuple(out) != DATASET_NAMES:
        raise ValueError(f"{BUILTIN_FILE} declares {list(out)}; it must declare actors.settings.DATASET_NAMES "
                         f"{list(DATASET_NAMES)}, in that order (the tokenizer's corpora follow it)")
    return out


def builtin_declaration(name: str) -> DatasetDeclaration:
    return builtin_declarations()[name]


def file_error(name: str, path: Path, problem: str) -> DataFileError:
    """A parser's `DataFileError`: the data set, the file, the problem and the declared public source."""
    return DataFileError(name, path, problem, builtin_declaration(name).source_url)


def builtin_specs() -> dict[str, SourceSpec]:
    """One `SourceSpec` per built-in, in `DATASET_NAMES` order."""
    from actors.sources.declared import declared_spec

    out: dict[str, SourceSpec] = {}
    for name, decl in builtin_declarations().items():
        if decl.parser is None:
            out[name] = declared_spec(name, decl)
            continue
        if decl.parser != name:  # a parser reads its own data set's declaration (its module's DECL)
            raise ValueError(f"{BUILTIN_FILE}: {name} names parser {decl.parser!r}; a parser reads only its own "
                             f"data set")
        parser: Parser = import_module(PARSER_MODULES[decl.parser]).PARSER
        out[name] = SourceSpec(
            name=name,
            title=decl.title,
            files=tuple(decl.files) + parser.side_files,
            source_url=decl.source_url,
            license=decl.license,
            modalities=parser.modalities or decl.modalities(),
            schema=parser.schema,
            load=parser.load,
            list_files=parser.list_files,
        )
    return out
