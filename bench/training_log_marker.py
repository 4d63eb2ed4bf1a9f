"""No personal data in the training logs (issue 18, item 5): a Financial PhraseBank slice with a distinctive
marker in one training row's text (and in one line the loader rejects) is prepared and finetuned on with the
real CLI (`finmm prepare`, then a tiny `finmm finetune --task sentiment`, the cluster tests' tiny overrides),
and every log that finmm and Ray write is searched for the marker. It must not appear.

Searched: both commands' stdout and stderr, every file of their Ray sessions (RAY_TMPDIR points them into the
work folder, so the sessions are theirs: raylet, GCS, workers, Ray Train and Ray Data logs), every file of the
run folder (metrics, Ray Train's state and results), the finetune output folder and any `artifacts/logs`
file the commands wrote. Not searched: the prepared data folder, which holds the rows themselves (the marker
row in its shard, the rejected line in `rejected.parquet`, as data); the bench checks it is there, so that
the run did read it.

    python bench/training_log_marker.py                    # ~2-3 min on 2 CPUs
    python bench/training_log_marker.py --json artifacts/bench/training_log_marker/summary.json
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from load import write_summary  # bench/load.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tiny_overrides(data_dir: Path, work: Path) -> list[str]:
    """tests/conftest.py `tiny_override_list`: the tiny 2-worker CPU run the training tests use."""
    spec = importlib.util.spec_from_file_location("_finmm_cluster_fixtures", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tiny_override_list(data_dir, work)


def marked_phrasebank(source: Path, root: Path, marker: str, lines: int) -> tuple[str, str]:
    """`lines` lines of the real Sentences_50Agree.txt under root/financial_phrasebank, plus a training row and a
    rejected line that hold the marker. Returns (the marker row's sentence, the rejected line)."""
    from actors.sources.phrasebank import ALL_AGREE_FILE, FILE, split_of

    folder = root / "financial_phrasebank"
    folder.mkdir(parents=True)
    for other in source.iterdir():  # the other data sets as they are: prepare reads every text corpus's train
        if other.is_dir() and other.name != folder.name:  # texts for the vocabulary
            (root / other.name).symlink_to(other.resolve(), target_is_directory=True)
    shutil.copy(source / "financial_phrasebank" / ALL_AGREE_FILE, folder / ALL_AGREE_FILE)
    original = (source / "financial_phrasebank" / FILE).read_bytes().decode("latin-1").splitlines()[:lines]
    n = 0
    while split_of(sentence := f"Jane {marker} Doe of Espoo said operating profit rose {n} % .") != "train":
        n += 1
    rejected = f"Customer {marker} Smith complained about the fees"  # no '@label': rejected by the loader
    body = [*original[:7], f"{sentence}@positive", *original[7:20], rejected, *original[20:]]
    (folder / FILE).write_bytes(("\r\n".join(body) + "\r\n").encode("latin-1"))
    return sentence, rejected


def finmm(args: list[str], log: Path, env: dict) -> float:
    t0 = time.perf_counter()
    with log.open("wb") as out:
        rc = subprocess.run([sys.executable, "-m", "finmm.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                            env=env, cwd=ROOT).returncode
    if rc != 0:
        raise SystemExit(f"finmm {args[0]} failed (exit {rc}): see {log}")
    return round(time.perf_counter() - t0, 1)


def marker_rows(folder: Path, marker: str) -> dict[str, int]:
    """Rows holding the marker in any string column, in the shards and in rejected.parquet."""
    import pyarrow.parquet as pq

    out = {"shards": 0, "rejected": 0}
    for path in folder.rglob("*.parquet"):
        table = pq.read_table(path)
        text = [n for n in table.column_names if str(table.schema.field(n).type) in ("string", "large_string")]
        n = sum(marker in str(v) for name in text for v in table.column(name).to_pylist())
        out["rejected" if "rejected" in path.name else "shards"] += n
    return out


def hits(folders: list[Path], marker: bytes, skip: Path) -> tuple[int, list[str]]:
    """(files searched, files holding the marker) under `folders`, less anything under `skip`."""
    searched, found = 0, []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            if skip in path.parents:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            searched += 1
            if marker in data:
                found.append(str(path))
    return searched, found


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=240, help="Lines of the real file around the marker rows.")
    ap.add_argument("--steps", type=int, default=20, help="finetune.max_steps")
    ap.add_argument("--json", help="Also write the summary here.")
    ap.add_argument("--keep", action="store_true", help="Keep the work folder.")
    args = ap.parse_args(argv)
    from actors.data_root import resolve_data_root

    marker = f"PIIMARK{uuid.uuid4().hex[:10]}"
    work = Path(tempfile.mkdtemp(prefix="fm-marker-"))  # short: Ray's socket paths live under it
    started, t_start = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), time.time()
    try:
        raw, data = work / "raw", work / "data"
        sentence, rejected = marked_phrasebank(resolve_data_root(None), raw, marker, args.lines)
        env = {**os.environ, "RAY_TMPDIR": str(work / "ray"), "RAY_USAGE_STATS_ENABLED": "0"}
        (work / "ray").mkdir()
        logs = work / "logs"
        logs.mkdir()
        prepare_s = finmm(["prepare", "--datasets", "financial_phrasebank", f"data.root={raw}",
                           f"data.output_dir={data}"], logs / "prepare.log", env)
        in_data = marker_rows(data / "financial_phrasebank", marker)
        overrides = [*tiny_overrides(data, work / "out"), f"data.root={raw}", f"finetune.max_steps={args.steps}"]
        finetune_s = finmm(["finetune", "--task", "sentiment", *overrides], logs / "finetune.log", env)
        fresh_run_logs = [p for p in (ROOT / "artifacts" / "logs").glob("*") if p.stat().st_mtime >= t_start] \
            if (ROOT / "artifacts" / "logs").is_dir() else []
        searched, found = hits([logs, work / "ray", work / "out", *fresh_run_logs], marker.encode(), skip=data)
        sessions = sorted(p.name for p in (work / "ray").rglob("session_2*") if p.is_dir())
        summary = {"started": started, "marker": "PIIMARK + 10 hex", "rows_read": args.lines + 2,
                   "marker_row_split": "train", "marker_in_prepared_data": in_data,
                   "prepare_s": prepare_s, "finetune_s": finetune_s, "finetune_steps": args.steps,
                   "ray_sessions": len(sessions), "files_searched": searched, "hits": found,
                   "driver_log_lines": sum(len(p.read_text(errors="replace").splitlines()) for p in logs.glob("*"))}
    except BaseException:
        print(f"failed: the work folder {work} is kept", file=sys.stderr)
        raise
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    write_summary(summary, args.json)
    return summary


if __name__ == "__main__":
    s = main()
    sys.exit(0 if not s["hits"] and s["marker_in_prepared_data"].get("shards") and s["files_searched"] else 1)
