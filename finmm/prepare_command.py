"""`finmm prepare`: run the Ray Data pipeline with a progress display and print what was made."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from finmm.config import FinMMSettings


def summary_table(summaries) -> Table:
    table = Table("data set", "read", "written", "rejected", "sliced out", "in = written + rejected", "splits",
                  "[UNK] base -> extended", "s", title="finmm prepare")
    for s in summaries:
        ok = s.n_read == s.n_written + s.n_rejected + s.n_sliced_out
        unk = f"{s.unk_rates['base']:.1%} -> {s.unk_rates['extended']:.1%}" if s.unk_rates else "-"
        table.add_row(
            s.dataset, str(s.n_read), str(s.n_written), str(s.n_rejected), str(s.n_sliced_out),
            "yes" if ok else "[red]NO[/]", ", ".join(f"{k} {v}" for k, v in s.splits.items()), unk, f"{s.wall_s:.1f}",
        )
    return table


def run_prepare(settings: FinMMSettings, datasets: list[str] | None, console: Console,
                rebuild_tokenizer: bool = False) -> int:
    """Returns the process exit code: 0, 1 for bad raw data, 4 when counts do not reconcile."""
    from actors.manifest import ReconcileError
    from actors.pipeline import prepare
    from actors.sources.base import DataError, DeclarationError
    from finmm.ray_runtime import ensure_ray
    from finmm.run_log import error_block

    ensure_ray(settings.cluster)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            summaries = prepare(settings.data, datasets, progress, rebuild_tokenizer=rebuild_tokenizer)
    except DeclarationError as exc:  # a declared data set that does not fit its files
        error_block(console, exc.what, exc.where, exc.fix)
        return 1
    except DataError as exc:
        console.print(f"[bold red]data error:[/] {exc}", highlight=False)
        return 1
    except ReconcileError as exc:
        console.print(f"[bold red]counts do not reconcile:[/] {exc}", highlight=False)
        return 4
    console.print(summary_table(summaries))
    console.print(f"shards, manifests and rejected rows are under {settings.data.output_dir}/")
    from actors.versions import tokenizer_record

    record = tokenizer_record(settings.data.output_dir)
    if record is not None:
        console.print(f"tokenizer {record['version']} ({record['kind']}), kept by later prepares; "
                      "`--rebuild-tokenizer` builds it again", highlight=False)
    return 0
