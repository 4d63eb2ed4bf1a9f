from __future__ import annotations

import pytest

from actors.data_root import resolve_data_root
from actors.sources.base import DataError, DataRootError


def test_configured_path_wins(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "env").mkdir()
    monkeypatch.setenv("FINMM_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "cfg") == (tmp_path / "cfg").resolve()


def test_env_then_dot_data_then_shared(tmp_path, monkeypatch):
    work = tmp_path / "proj" / "main"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("FINMM_DATA_DIR", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    assert resolve_data_root(None) == (tmp_path / "env").resolve()
    monkeypatch.delenv("FINMM_DATA_DIR")
    (tmp_path / "proj" / "shared" / "data").mkdir(parents=True)
    assert resolve_data_root(None) == (tmp_path / "proj" / "shared" / "data").resolve()
    (work / "data").mkdir()
    assert resolve_data_root(None) == (work / "data").resolve()


def test_missing_configured_path_falls_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINMM_DATA_DIR", raising=False)
    (tmp_path / "data").mkdir()
    assert resolve_data_root(tmp_path / "nope") == (tmp_path / "data").resolve()


def test_nothing_found_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINMM_DATA_DIR", str(tmp_path / "env-missing"))
    with pytest.raises(DataRootError) as err:
        resolve_data_root(tmp_path / "cfg-missing")
    msg = str(err.value)
    assert isinstance(err.value, DataError)
    for part in ("cfg-missing", "env-missing", "data", "../shared/data", "FINMM_DATA_DIR", "data.root"):
        assert part in msg
