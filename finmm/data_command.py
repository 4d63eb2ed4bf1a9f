"""`finmm data infer FILE` and `finmm data check NAME`: declare your own data set and check it against its files.

Both read files with pandas only: no Ray, nothing written. Failures print the config errors' shape (what,
where, how to fix: `finmm.run_log.error_block`).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from finmm.config import FinMMSettings
from finmm.run_log import error_block


def run_infer(settings: FinMMSettings, path: Path, console: Console, err_console: Console) -> int:
    """Print a proposed declaration for `path` as YAML. Returns the exit code."""
    from actors.data_root import resolve_data_root
    from actors.infer import infer_declaration, to_yaml
    from actors.sources.base import DataRootError

    if not path.is_file():
        error_block(err_console, f"no file {path}", f"the FILE argument (-> {path.absolute()})",
                    "give the path of a CSV, TSV, Parquet or JSON Lines table")
        return 1
    try:
        root = resolve_data_root(settings.data.root)
    except DataRootError:
        root = None
    try:
        proposal = infer_declaration(path, root)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        error_block(err_console, f"cannot read {path.name} as a table: {exc}", str(path),
                    "give a CSV/TSV (UTF-8), Parquet (.parquet) or JSON Lines (.jsonl) file")
        return 1
    console.print(to_yaml(proposal), markup=False, highlight=False, end="", soft_wrap=True)  # never wrap YAML
    return 0


def run_check(settings: FinMMSettings, name: str, console: Console, err_console: Console) -> int:
    """Load data set `name` as `finmm prepare` would and print its counts. Returns the exit code."""
    import difflib

    from actors.sources import DataError, DeclarationError, load_source

    known = settings.data.dataset_names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        error_block(err_console, f"no data set {name!r}", "data.declared in the config",
                    (f"did you mean {close[0]!r}? " if close else "")
                    + f"Known: {', '.join(known)}. Declare yours under data.declared (`finmm data infer FILE` "
                    f"proposes a block)")
        return 2
    try:
        table = load_source(name, settings.data)
    except DeclarationError as exc:
        error_block(err_console, exc.what, exc.where, exc.fix)
        return 1
    except DataError as exc:
        error_block(err_console, str(exc), f"data set {name!r}", "see the message; docs/data.md describes the rules")
        return 1
    console.print(f"{name}: {table.n_read} rows read from {len(table.files)} file(s) = {len(table.rows)} accepted + "
                  f"{len(table.rejected)} rejected + {table.n_sliced_out} sliced out", highlight=False)
    for part in check_tables(table):
        console.print(part)
    splits = set(table.rows["split"])
    if "validation" not in splits and not any(s.startswith("fold") for s in splits):
        console.print(f"{name}: note: no validation split; finetuning picks its checkpoint on validation, so give "
                      f"the split rule one (column: split.values; time: validation_from or validation_buckets; hash: "
                      f"split.validation buckets; random: a validation fraction)",
                      highlight=False)
    declared = settings.data.declared.get(name)
    if declared is not None and declared.task:
        console.print(f"{name}: declared for task {declared.task} ({len(table.classes or [])} classes)",
                      highlight=False)
    console.print(f"{name}: valid. `finmm prepare --datasets {name}` writes its shards.", highlight=False)
    return 0


def check_tables(table) -> list[Table]:
    """Rows per split; the class balance (a row per class, a column per split); the rejects by reason."""
    rows = table.rows
    classes = table.classes or [str(c) for c in sorted(rows["label"].unique())]
    splits = sorted(rows["split"].unique())
    counts = rows.groupby(["label", "split"]).size()
    per_split = rows["split"].value_counts()
    split_table = Table("split", "rows", "share", title="rows per split")
    for split in splits:
        split_table.add_row(split, str(per_split[split]), f"{per_split[split] / max(len(rows), 1):.1%}")
    balance = Table("class", "label id", *splits, title="class balance per split")
    for i, cls in enumerate(classes):
        cells = []
        for split in splits:
            n = int(counts.get((i, split), 0))
            cells.append(f"{n} ({n / per_split[split]:.0%})")
        balance.add_row(cls, str(i), *cells)
    out = [split_table, balance]
    if not table.rejected.empty:
        rejects = Table("reason", "rows", "first at", title="rejected rows by reason")
        first = table.rejected.groupby("reason", sort=False)["source"].first()
        for reason, n in table.reject_counts().items():
            rejects.add_row(reason, str(n), str(first[reason]))
        out.append(rejects)
    return out
