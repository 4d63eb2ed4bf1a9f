"""One log file per run: what Ray, its workers and DeepSpeed print goes there, the terminal keeps a quiet view.

`RunLog` points the process's own stdout and stderr file descriptors at `artifacts/logs/<command>-<time>.log`
for the length of a command, so everything written to them lands in the file: Ray's start-up lines, the
workers' output that `log_to_driver` forwards, Python logging (Ray's and DeepSpeed's handlers write to
`sys.stderr`), warnings, tracebacks. The terminal is reached through copies of the original descriptors, kept
by `console` and `err_console`. `--verbose` leaves the descriptors alone: the noise is back on the terminal.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console

LOG_DIR = Path("artifacts/logs")
"""Where the per-run log files go (relative to the working directory)."""


class RunLog:
    """`with RunLog("demo") as log:` -- `log.console` / `log.err_console` write to the terminal, `log.noise` and
    plain `print` to the log file `log.path` (None with `verbose=True`, where everything stays on the terminal)."""

    def __init__(self, command: str, verbose: bool = False, folder: Path | None = None):
        self.command = command
        self.verbose = verbose
        self.folder = Path(folder or LOG_DIR)
        self.path: Path | None = None
        self.console = Console()
        self.err_console = Console(stderr=True, soft_wrap=True)
        self.noise = self.console
        self._saved: tuple[int, int] | None = None
        self._files: list = []

    def __enter__(self) -> RunLog:
        if self.verbose:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = (self.folder / f"{self.command}-{time.strftime('%Y%m%d-%H%M%S')}.log").resolve()
        width = shutil.get_terminal_size((110, 24)).columns  # measured before fd 1 stops being the terminal
        # Ray Data's progress bars would be thousands of lines in the file; the driver's view replaces them
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        out = os.fdopen(os.dup(self._saved[0]), "w", buffering=1)
        err = os.fdopen(os.dup(self._saved[1]), "w", buffering=1)
        self._files = [out, err]
        self.console = Console(file=out, width=width)
        self.err_console = Console(file=err, width=width, soft_wrap=True)
        self.noise = Console(file=sys.stdout, width=160, force_terminal=False)
        return self

    def log_exception(self, exc: BaseException) -> None:
        """The full traceback, into the log file (or the terminal's stderr with --verbose)."""
        sys.stderr.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        sys.stderr.flush()

    def __exit__(self, *exc_info) -> None:
        if self._saved is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        for f in self._files:
            f.close()
        self._saved = None


def error_block(console: Console, what: str, where: str, fix: str) -> None:
    """A failure in the shape of the config errors: what went wrong, where, and how to fix it."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(what)}", highlight=False)
    console.print(f"  [bold]where:[/] {escape(where)}", highlight=False)
    console.print(f"  [bold]how to fix:[/] {escape(fix)}", highlight=False)
