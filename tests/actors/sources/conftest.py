"""Fixtures for the loader tests: they run against the real raw files (and fail when none are found)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from actors.data_root import resolve_data_root
from actors.settings import DataSection
from actors.sources import SOURCES, DataRootError, SourceTable, load_source


@pytest.fixture(scope="session")
def data_root() -> Path:
    try:
        return resolve_data_root(None)
    except DataRootError as e:  # the suite is about the real files: a missing data root is a failure
        pytest.fail(f"raw data not available: {e}")


@pytest.fixture(scope="session")
def settings() -> DataSection:
    return DataSection()


_CACHE: dict[str, SourceTable] = {}


@pytest.fixture(scope="session")
def load(data_root, settings):
    """`load(name)`: the full data set, loaded once per test session."""

    def _load(name: str) -> SourceTable:
        if name not in _CACHE:
            _CACHE[name] = load_source(name, settings, root=data_root)
        return _CACHE[name]

    return _load


def linked_copy(data_root: Path, name: str, tmp_path: Path, skip: tuple[str, ...] = ()) -> Path:
    """A tmp data root whose `name` folder links every declared file except `skip`; returns the root."""
    for rel in SOURCES[name].required_files(data_root):
        dst = tmp_path / name / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if rel not in skip:
            dst.symlink_to((data_root / name / rel).resolve())
    return tmp_path


def replace_file(root: Path, name: str, rel: str, data: bytes | None = None, src: Path | None = None) -> Path:
    """Replace a linked file by real bytes (or a copy of `src`)."""
    dst = root / name / rel
    dst.unlink(missing_ok=True)
    if src is not None:
        shutil.copyfile(src, dst)
    else:
        dst.write_bytes(data or b"")
    return dst


@pytest.fixture
def copy_tools():
    """(linked_copy, replace_file) helpers for tests that break a copy of a data set."""
    return linked_copy, replace_file
