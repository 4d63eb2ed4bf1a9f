"""A private PostgreSQL server for the tests of the shared server store: its own cluster in a temporary folder,
on a free 127.0.0.1 port, trust authentication for local connections only, stopped and removed at the end of the
session. The Debian package `postgresql` provides the binaries (the Makefile's venv target installs it); without
them the tests that ask for the server fail, saying so.

PostgreSQL refuses to run as root: as root (CI), the cluster's folder belongs to the `postgres` user and
initdb / pg_ctl run as that user (runuser)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

SERVER_USER = "postgres"
"""The system user the server runs as when the tests run as root (the Debian package creates it)."""


def server_bin() -> Path:
    """The folder of initdb / pg_ctl: the newest /usr/lib/postgresql/<version>/bin, else the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    pytest.fail("the PostgreSQL server binaries (initdb, pg_ctl) are not installed: install the Debian package "
                "`postgresql` (apt-get install postgresql; `make venv` does) to test the shared server store",
                pytrace=False)


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One private cluster: `start()` -> its base URL (database `postgres`, user `postgres`), `stop()`."""

    def __init__(self):
        self.bin = server_bin()
        self.root = Path(tempfile.mkdtemp(prefix="finmm-pg-"))  # not under pytest's 0700 root-owned tmp
        self.data = self.root / "data"
        self.port = 0
        if os.geteuid() == 0:
            shutil.chown(self.root, SERVER_USER)

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(_as_server_user([str(self.bin / args[0]), *args[1:]]), capture_output=True, text=True,
                              timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def start(self, tries: int = 3) -> str:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        for attempt in range(tries):  # a free port can be taken before the server binds it: draw another
            self.port = _free_port()
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                          "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}", "start")
                return self.url()
            except RuntimeError:
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The session's private PostgreSQL server: its base URL (`postgresql://postgres@127.0.0.1:<port>/postgres`)."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


def namespace() -> str:
    """A schema name no other test uses (each test's stores live in schemas of their own)."""
    return f"t_{uuid.uuid4().hex[:12]}"
