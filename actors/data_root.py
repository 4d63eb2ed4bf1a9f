"""Where the raw data sets live."""

from __future__ import annotations

import os
from pathlib import Path

from actors.sources.base import DataRootError

ENV_VAR = "FINMM_DATA_DIR"
DEFAULT_CANDIDATES = (Path("data"), Path("../shared/data"))

__all__ = ["DataRootError", "ENV_VAR", "resolve_data_root"]


def resolve_data_root(configured: Path | None) -> Path:
    """The raw-data folder: `configured` if given, else `$FINMM_DATA_DIR`, else `./data`, else `../shared/data`.

    Relative paths are taken from the current working directory. The first candidate that exists as a directory
    wins; a configured path or `$FINMM_DATA_DIR` that does not exist is skipped (and named in the error if
    nothing is found). Raises `DataRootError` when none exists.
    """
    candidates: list[tuple[str, Path]] = []
    if configured is not None:
        candidates.append(("data.root in the config", Path(configured)))
    env = os.environ.get(ENV_VAR)
    if env:
        candidates.append((f"${ENV_VAR}", Path(env)))
    candidates += [("default", p) for p in DEFAULT_CANDIDATES]
    for _, path in candidates:
        if path.is_dir():
            return path.resolve()
    tried = "; ".join(f"{what}: {path} (-> {path.absolute()})" for what, path in candidates)
    raise DataRootError(
        f"no raw-data folder found. Tried, in order: {tried}. Fix: set the environment variable {ENV_VAR} "
        f"or `data.root` in the config to the folder that holds german_credit/, lending_club/, ... "
        f"(the data sets described in EVAL.md)."
    )
