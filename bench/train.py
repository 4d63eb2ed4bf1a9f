"""Training throughput: Ray Train + DeepSpeed with 2 CPU workers at ZeRO 1, 2 and 3, against a plain
single-process torch loop on the same model and the same data, in one run; or, with --precision-compare,
one ZeRO-2 finetune at fp32, bf16-mixed and bf16 side by side (and the plain loop at fp32 and bf16-mixed).

    .venv/bin/python bench/train.py [--preset tiny] [--steps 60] [--batch-size 16]
    .venv/bin/python bench/train.py --precision-compare --preset small --steps 40 --batch-size 16

The first writes docs/benchmarks/train.md, the second docs/benchmarks/train-precision.md (--out picks another
file). samples/s and tokens/s (real text tokens, padding excluded) are measured after the first logging window
(warm-up excluded); peak memory is the largest resident set of any worker process (ru_maxrss). `--preset small`
starts from MiniLM (model.init_from_minilm) unless --init-from-minilm false; other presets start random.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATASET = "financial_phrasebank"
LOG_EVERY = 10
RAY_PRECISIONS = ("fp32", "bf16-mixed", "bf16")
PLAIN_PRECISIONS = ("fp32", "bf16-mixed")
WHAT_IS_BF16 = {
    "fp32": "nothing",
    "bf16-mixed": "forward and backward matmuls (torch.autocast over fp32 weights and fp32 AdamW)",
    "bf16": "weights, activations and gradients (DeepSpeed bf16; fp32 master weights in the optimizer)",
}


def prepared(out: Path, rows: int) -> Path:
    from actors.pipeline import prepare
    from actors.settings import DataSection

    if not (out / DATASET / "manifest.json").exists():
        prepare(DataSection(max_rows_per_split=rows, output_dir=out), [DATASET], vocab_datasets=[DATASET])
    return out


def init_from_minilm(args) -> bool:
    """`auto`: the real model for `small` (MiniLM weights), random init for the other presets."""
    return args.preset == "small" if args.init_from_minilm == "auto" else args.init_from_minilm == "true"


def settings_for(out: Path, args, *extra: str):
    from finmm.config import load_settings

    return load_settings(None, [
        f"data.output_dir={out}", f"model.preset={args.preset}",
        f"model.init_from_minilm={str(init_from_minilm(args)).lower()}",
        f"cluster.storage_path={out.parent / 'runs'}", f"finetune.output_dir={out.parent / 'finetune'}",
        # never start from a bundle that a pretraining run elsewhere left in artifacts/pretrain/latest
        f"pretrain.output_dir={out.parent / 'no-pretrain'}",
        f"finetune.max_steps={args.steps}", f"finetune.batch_size={args.batch_size}",
        f"finetune.log_every={LOG_EVERY}", f"finetune.checkpoint_every={args.steps}", "finetune.max_failures=0",
        *extra,
    ])


def steady(metrics: list[dict]) -> dict:
    """Mean samples/s and tokens/s of the logged windows after the first (warm-up) one, leaving out a window
    that follows a validation (its clock ran through the validation); peak RSS; the last window's loss; the
    last validation accuracy."""
    logged = [m for m in metrics if "samples_per_s" in m]
    after_validation = {i + 1 for i, m in enumerate(logged) if any(k.startswith("val/") for k in m)}
    kept = [m for i, m in enumerate(logged) if i > 0 and i not in after_validation] or logged
    accuracy = [m[k] for m in metrics for k in m if k.startswith("val/") and k.endswith("/accuracy")]
    return {
        "samples_per_s": sum(m["samples_per_s"] for m in kept) / len(kept),
        "tokens_per_s": sum(m.get("tokens_per_s", 0.0) for m in kept) / len(kept),
        "peak_rss_mb": max(m["peak_rss_mb"] for m in logged),
        "loss": logged[-1].get("loss"),
        "val_accuracy": accuracy[-1] if accuracy else None,
        "windows": len(kept),
    }


def deepspeed_run(out: Path, args, stage: int, precision: str | None = None) -> dict:
    from cluster.trainer import finetune

    extra = [f"finetune.deepspeed.zero_stage={stage}"]
    if precision is not None:
        extra.append(f"finetune.deepspeed.precision={precision}")
    settings = settings_for(out, args, *extra)
    tag = f"zero{stage}" + (f"-{precision}" if precision else "")
    started = time.perf_counter()
    outcome = finetune(settings, ["sentiment"], name=f"bench-{tag}-{int(time.time())}")
    lines = (outcome.run_dir / "metrics.jsonl").read_text().splitlines()
    return {**steady([json.loads(x) for x in lines]), "wall_s": time.perf_counter() - started}


def _plain_loop(out: Path, args, precision: str) -> dict:
    """What a user writes without Ray or DeepSpeed: one process, torch AdamW with the same parameter groups and
    schedule as the Ray runs, the same batches, and for bf16-mixed the same torch.autocast forward."""
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    from actors.collate import BatchLayout, collate, length_grouped_batches
    from cluster.deepspeed_config import warmup_then_linear_decay
    from model.factory import build_model
    from model.param_groups import param_groups, pretrained_names
    from model.precision import autocast

    trainer = settings_for(out, args).finetune
    table = pq.read_table(out / DATASET / "train", columns=["input_ids", "attention_mask", "label"]).to_pydict()
    vocab = Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab_size()
    torch.manual_seed(0)
    minilm = init_from_minilm(args)
    model = build_model(settings_for(out, args).model.model_copy(update={"heads": {"sentiment": {}}}),
                        vocab, None, kind="task").train()
    groups = param_groups(model, trainer.learning_rate, trainer.new_module_learning_rate, trainer.weight_decay,
                          pretrained_names(model, "minilm" if minilm else None))
    optimizer = torch.optim.AdamW(groups, lr=trainer.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_linear_decay(args.steps, trainer.warmup_steps))
    layout = BatchLayout()
    batches, epoch, losses = [], 0, []
    samples, tokens, t0 = 0, 0, None
    for step in range(args.steps):
        if not batches:
            batches = length_grouped_batches(table, args.batch_size, seed=epoch)
            epoch += 1
        batch = collate(batches.pop(), layout)
        labels = batch.pop("labels")
        with autocast(precision):
            loss = model(batch, labels={"sentiment": labels})["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.deepspeed.gradient_clipping)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step == LOG_EVERY - 1:  # same warm-up exclusion as the logged windows of the Ray runs
            t0, samples, tokens = time.perf_counter(), 0, 0
        elif t0 is not None:
            samples += labels.shape[0]
            tokens += int(batch["text"]["attention_mask"].sum())
    elapsed = time.perf_counter() - t0 if t0 is not None else float("nan")
    last_window = losses[(args.steps - 1) // LOG_EVERY * LOG_EVERY:]
    return {
        "samples_per_s": samples / elapsed, "tokens_per_s": tokens / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "loss": sum(last_window) / len(last_window), "val_accuracy": None, "threads": torch.get_num_threads(),
    }


def plain_run(out: Path, args, precision: str = "fp32") -> dict:
    """The plain loop in a fresh process of its own, so its peak RSS is its own and not the driver's."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        started = time.perf_counter()
        result = pool.submit(_plain_loop, out, args, precision).result()
    return {**result, "wall_s": time.perf_counter() - started}


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and which of the native-bf16 flags it has."""
    from model.precision import BF16_CPU_FLAGS

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    return name, [f for f in BF16_CPU_FLAGS if f in flags]


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    shown = str(script.relative_to(REPO)) if script.is_relative_to(REPO) else sys.argv[0]
    return shlex.join([".venv/bin/python", shown, *sys.argv[1:]])


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def precision_page(args, ray: dict, plain: dict, load: tuple[float, float]) -> list[str]:
    import deepspeed

    from model.precision import cpu_supports_bf16, resolve_precision

    cpu, flags = cpu_description()
    base, plain_base = ray["fp32"], plain["fp32"]
    init = "MiniLM weights (model.init_from_minilm=true)" if init_from_minilm(args) else "random initialisation"
    lines = [
        "# Training precision: fp32 vs bf16-mixed vs bf16 tokens/s",
        "",
        f"Measured {date.today()} on this machine ({os.cpu_count()} cores, {cpu}, no GPU, 1-min load average "
        f"{load[0]:.1f} at the start and {load[1]:.1f} at the end), torch {torch.__version__}, DeepSpeed "
        f"{deepspeed.__version__}.",
        f"Native bf16 on this CPU (model.precision.cpu_supports_bf16): **{'yes' if cpu_supports_bf16() else 'no'}**"
        f" (flags present: {', '.join(flags) or 'neither amx_bf16 nor avx512_bf16'}); `precision: auto` resolves "
        f"to `{resolve_precision('auto', False)}` here.",
        f"Preset `{args.preset}` from {init}, sentiment head, Financial PhraseBank train rows (at most "
        f"{args.rows} per split), batch {args.batch_size} per worker, {args.steps} steps, the same seed and "
        "batches at every precision.",
        f"Command: `{command_line()}`",
        "",
        "## Ray Train + DeepSpeed ZeRO-2, 2 CPU workers (gloo, 1 thread each)",
        "",
        "| precision (`finetune.deepspeed.precision`) | in bf16 | samples/s | tokens/s | ratio to fp32 (tokens/s) "
        "| peak RSS per worker (MiB) | final train loss | val accuracy | wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for precision, r in ray.items():
        lines.append(f"| {precision} | {WHAT_IS_BF16[precision]} | {r['samples_per_s']:.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / base['tokens_per_s']:.2f}x | "
                     f"{r['peak_rss_mb']:.0f} | {_fmt(r['loss'], '.4f')} | {_fmt(r['val_accuracy'], '.3f')} | "
                     f"{r['wall_s']:.0f} |")
    threads = plain_base.get("threads", torch.get_num_threads())
    lines += [
        "",
        f"## Plain torch loop, 1 process ({threads} intra-op threads), AdamW, same parameter groups and schedule",
        "",
        "| precision | in bf16 | samples/s | tokens/s | ratio to fp32 (tokens/s) | peak RSS (MiB) | final train loss "
        "| wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for precision, r in plain.items():
        lines.append(f"| {precision} | {WHAT_IS_BF16[precision]} | {r['samples_per_s']:.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / plain_base['tokens_per_s']:.2f}x | "
                     f"{r['peak_rss_mb']:.0f} | {r['loss']:.4f} | {r['wall_s']:.0f} |")
    windows = min(r["windows"] for r in ray.values())
    lines += [
        "",
        f"samples/s and tokens/s are the mean of the logging windows ({LOG_EVERY} steps each) after the first, "
        f"warm-up window ({windows} window(s) kept per Ray run; the plain loop counts every step after step "
        f"{LOG_EVERY}); a window whose clock ran through a validation is left out. tokens/s counts real text "
        "tokens, padding excluded. The final train loss is the mean over the last logging window; val accuracy "
        "is the Ray run's validation at its last step. Peak RSS is ru_maxrss: the largest worker of each Ray run, "
        "and the plain loop's own process (each plain run has a fresh one). Wall s includes start-up, "
        "validation and checkpointing. `bf16` has no plain-loop row: DeepSpeed's bf16 mode (bf16 weights with "
        "an fp32 master copy) has no one-line torch equivalent.",
    ]
    return lines


def zero_page(args, plain: dict, results: dict, load_before: float) -> list[str]:
    lines = [
        "# Training throughput: Ray Train + DeepSpeed vs a plain torch loop",
        "",
        f"Measured {date.today()} on this machine ({os.cpu_count()} cores, {platform.processor() or 'x86_64'}, "
        f"no GPU, 1-min load average {load_before:.1f} at the start), preset `{args.preset}`, sentiment head, "
        f"Financial PhraseBank train rows, batch {args.batch_size} per worker, {args.steps} steps.",
        f"Command: `.venv/bin/python bench/train.py --preset {args.preset} --steps {args.steps} "
        f"--batch-size {args.batch_size}`",
        "",
        "| setup | samples/s | ratio to plain loop | peak RSS per worker (MiB) |",
        "|---|---:|---:|---:|",
        f"| plain torch loop, 1 process, AdamW | {plain['samples_per_s']:.1f} | 1.00x | {plain['peak_rss_mb']:.0f} |",
    ]
    for stage, r in results.items():
        lines.append(f"| Ray Train + DeepSpeed ZeRO-{stage}, 2 CPU workers (gloo) | {r['samples_per_s']:.1f} | "
                     f"{r['samples_per_s'] / plain['samples_per_s']:.2f}x | {r['peak_rss_mb']:.0f} |")
    lines += [
        "",
        f"Threads: the plain loop ran with torch's default {plain.get('threads', torch.get_num_threads())} "
        "intra-op threads; each Ray",
        "worker reserves 1 CPU and so runs 1 thread (Ray sets OMP_NUM_THREADS from num_cpus). Both setups use",
        "the same 2 cores. No GPU was lent to this task, so the bf16 model-FLOP utilisation of `small` and",
        "`base` is not measured.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rows", type=int, default=2000, help="at most this many PhraseBank rows per split")
    parser.add_argument("--init-from-minilm", choices=("auto", "true", "false"), default="auto",
                        help="start from MiniLM weights; auto: yes for --preset small, no otherwise")
    parser.add_argument("--precision-compare", action="store_true",
                        help="ZeRO-2 at fp32, bf16-mixed and bf16 (and the plain loop at fp32 and bf16-mixed)")
    parser.add_argument("--out", default=None,
                        help="markdown file to write (default docs/benchmarks/train.md, or train-precision.md "
                             "with --precision-compare)")
    args = parser.parse_args()
    if args.steps <= LOG_EVERY:
        parser.error(f"--steps must exceed {LOG_EVERY}: the first {LOG_EVERY} steps are the excluded warm-up")
    out = Path(args.out or REPO / "docs" / "benchmarks" / ("train-precision.md" if args.precision_compare
                                                             else "train.md"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    work = REPO / "artifacts" / "bench-train"
    data = prepared(work / f"data-{args.rows}rows", args.rows)  # a smaller --rows never reuses a larger run's data
    load_before = os.getloadavg()[0]
    if args.precision_compare:
        plain = {p: plain_run(data, args, p) for p in PLAIN_PRECISIONS}
        results = {p: deepspeed_run(data, args, 2, p) for p in RAY_PRECISIONS}
        lines = precision_page(args, results, plain, (load_before, os.getloadavg()[0]))
    else:
        plain = plain_run(data, args)
        results = {stage: deepspeed_run(data, args, stage) for stage in (1, 2, 3)}
        lines = zero_page(args, plain, results, load_before)
    ray.shutdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
