"""The driver's progress views: a training bar fed by the run's metrics.jsonl, and small helpers.

The training loop's rank 0 appends one JSON line to `<run>/metrics.jsonl` every `log_every` steps (step, loss,
samples/s, ...). `follow_training` tails that file in a thread while `fit()` runs and moves a rich progress bar:
steps done, the latest loss, samples/s and the estimated time left.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class MetricsTail(threading.Thread):
    """Calls `on_record(record)` for every JSON line appended to `path` (which may not exist yet)."""

    def __init__(self, path: Path, on_record, interval_s: float = 0.5):
        super().__init__(name="finmm-metrics-tail", daemon=True)
        self.path = Path(path)
        self.on_record = on_record
        self.interval_s = interval_s
        self._halt = threading.Event()
        self._offset = 0
        self._partial = ""

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open() as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next poll
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                self.on_record(record)

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.poll()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.poll()  # the last lines written before fit() returned


def describe(record: dict) -> str:
    """The bar's text for one metrics record: loss, samples/s, and a validation figure when there is one."""
    parts = []
    if isinstance(record.get("loss"), (int, float)):
        parts.append(f"loss {record['loss']:.3f}")
    if isinstance(record.get("samples_per_s"), (int, float)):
        parts.append(f"{record['samples_per_s']:.1f} samples/s")
    val = [(k, v) for k, v in record.items() if k.startswith("val") and isinstance(v, (int, float))]
    if val:
        parts.append(f"{val[0][0]} {val[0][1]:.3f}")
    return " · ".join(parts)


@contextmanager
def follow_training(console: Console, label: str, metrics_path: Path, total_steps: int | None) -> Iterator[None]:
    """A progress bar for one Ray Train run while the body (the `fit()` call) runs."""
    progress = Progress(SpinnerColumn(), TextColumn(f"  {label}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                        TextColumn("steps"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                        TextColumn("left"), TimeRemainingColumn(), console=console, transient=False)
    task = progress.add_task(label, total=total_steps or None, info="starting workers")

    def on_record(record: dict) -> None:
        if isinstance(record.get("step"), int):
            known = {"total": record["total_steps"]} if record.get("total_steps") else {}  # set by the run
            progress.update(task, completed=record["step"], info=describe(record) or "running", **known)

    tail = MetricsTail(metrics_path, on_record)
    with progress:
        tail.start()
        try:
            yield
        finally:
            tail.stop()
    # note: a failed run leaves the bar where it stopped; the error block follows it


def stage_progress(console: Console) -> Progress:
    """One line per item (data set, task, endpoint): spinner, description, elapsed time."""
    return Progress(SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("  {task.description}"),
                    TimeElapsedColumn(), console=console, transient=False)
