"""The model side of serving: load the bundle, batch rows of any task into one model batch (actors.collate,
training's code), run the heads in bf16 where the CPU has it, and the attributions (model.explain).
The backbone deployment (serve/deployments.py) and the plain-FastAPI baseline (serve/baseline_app.py) both
call this module, so they answer identically.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from actors.collate import BatchLayout, collate
from model.bundle import WEIGHTS_FILE, load_bundle
from model.explain import explain, merge_wordpieces, reference_tabular
from model.precision import cpu_supports_bf16
from serve.preprocess import Preprocessor, Query, Row

EVAL_FILE = "eval_results.json"
MODALITIES = ("text", "image", "tabular", "series")


def bf16_supported() -> bool:
    """True when the CPU has native bfloat16 matmuls (AMX or AVX512-BF16) that oneDNN can use."""
    return cpu_supports_bf16()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------- batching
TEXT_WIDTH_MULTIPLE = 16
"""A served batch's text width is rounded up to a multiple of this (at most the model's positions): a bounded
set of shapes, so the CPU kernels' per-shape caches (oneDNN primitives) stop growing after warm-up instead
of keeping one entry per exact length (docs/reliability.md, the soak)."""


def collate_rows(rows: list[Row], layout: BatchLayout, max_width: int | None = None) -> dict:
    """Rows of any tasks -> one model batch. Each row is collated by actors.collate (training's code), then
    the single-row batches are padded to the union of modalities: a modality a row lacks is masked out
    (text attention 0, image/tabular present False, series mask False), which the model treats as absent.
    With `max_width` (the model's text positions), the text width is rounded up to TEXT_WIDTH_MULTIPLE."""
    singles = [collate({k: [v] for k, v in r.columns.items()}, layout, r.dataset) for r in rows]
    return merge_batches(singles, max_width)


def merge_batches(batches: list[dict], max_width: int | None = None) -> dict:
    out: dict = {}
    sizes = [next(iter(b.values()))[next(iter(next(iter(b.values()))))].shape[0] for b in batches]
    present = {m for b in batches for m in b if m in MODALITIES}
    for m in MODALITIES:
        if m not in present:
            continue
        ref = next(b[m] for b in batches if m in b)
        if m == "text":
            width = max(b["text"]["input_ids"].shape[1] for b in batches if "text" in b)
            if max_width is not None:  # pad tokens are attention 0: the answers do not change
                width = max(width, min(-(-width // TEXT_WIDTH_MULTIPLE) * TEXT_WIDTH_MULTIPLE, max_width))
            ids, att = [], []
            for b, n in zip(batches, sizes, strict=True):
                i = b["text"]["input_ids"] if "text" in b else torch.zeros(n, 1, dtype=torch.long)
                a = b["text"]["attention_mask"] if "text" in b else torch.zeros(n, 1, dtype=torch.long)
                pad = width - i.shape[1]
                ids.append(torch.nn.functional.pad(i, (0, pad)))
                att.append(torch.nn.functional.pad(a, (0, pad)))
            out["text"] = {"input_ids": torch.cat(ids), "attention_mask": torch.cat(att)}
            continue
        absent = {"present": False, "mask": False, "numeric_missing": True}
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in ref}
        for b, n in zip(batches, sizes, strict=True):
            for k, t in ref.items():
                if m in b:
                    parts[k].append(b[m][k])
                else:
                    fill = absent.get(k, 0)
                    parts[k].append(torch.full((n, *t.shape[1:]), fill, dtype=t.dtype))
        out[m] = {k: torch.cat(v) for k, v in parts.items()}
    return out


# ------------------------------------------------------------------------------------------ model
class Engine:
    """A loaded bundle: model in eval mode, its preprocessing, and batched inference + attributions."""

    def __init__(self, model_dir: str | Path, bf16: bool = True, explain_method: str = "integrated_gradients",
                 explain_steps: int = 8):
        self.model_dir = Path(model_dir)
        bundle = load_bundle(self.model_dir)
        self.model = bundle.model.eval()
        self.config = bundle.config
        self.pre = Preprocessor(self.model_dir)
        self.layout = BatchLayout.from_dict(self.pre.layout_dict)
        self.bf16 = bool(bf16 and bf16_supported())
        self.explain_method, self.explain_steps = explain_method, explain_steps
        self.heads = list(self.model.heads.keys())
        self.forwards = 0
        """Forwards `infer` has run (one per group of a batch)."""

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def forward(self, rows: list[Row], heads: list[str]) -> list[dict[str, Any]]:
        """One forward pass over all rows; row i gets heads[i]'s outputs as numpy (probs, and embedding)."""
        batch = collate_rows(rows, self.layout, self.config.text.max_positions)
        with torch.inference_mode(), self.autocast():
            out = self.model(batch)
        return [_head_output(out[head], i) for i, head in enumerate(heads)]

    def attribute(self, rows: list[Row], head: str, target: list[int] | None = None) -> list[dict[str, Any]]:
        """Attributions of head's probability for rows of one head: per modality total, per word, per
        tabular feature (reason codes). A forward of its own (plus explain_steps for integrated gradients);
        `infer` saves that forward."""
        batch = collate_rows(rows, self.layout, self.config.text.max_positions)
        tgt = torch.tensor(target) if target is not None else None
        with self.autocast():
            exp = explain(self.model, batch, head, target=tgt, method=self.explain_method, steps=self.explain_steps)
        return attribution_rows(batch, rows, exp.tokens, exp.feature_names)

    # ------------------------------------------------------------------------------- the serving path
    def infer(self, queries: list[Query], bucket: bool = True) -> list[dict[str, Any]]:
        """Answer queries of any tasks: {"heads": {head: {"probs", ["embedding"]}}, ["attribution"],
        "batch_size"} each, in order. Queries are grouped (`forward_groups`) into forwards of rows alike in
        whether they are explained and, with `bucket`, in text length and modalities; each group is one
        forward (grad x input: the same forward, with gradients, also gives the attributions)."""
        results: list[dict[str, Any] | None] = [None] * len(queries)
        for idx in forward_groups(queries, bucket):
            group = [queries[i] for i in idx]
            for i, res in zip(idx, self._infer_group(group), strict=True):
                results[i] = {**res, "batch_size": len(idx)}
            self.forwards += 1
        return results  # type: ignore[return-value]

    def _infer_group(self, queries: list[Query]) -> list[dict[str, Any]]:
        rows = [q.row for q in queries]
        batch = collate_rows(rows, self.layout, self.config.text.max_positions)
        explained = {q.explain for q in queries} - {None}
        if explained and self.explain_method == "grad_x_input":
            outs, attributions = self._grad_x_input(batch, rows, queries)
        else:
            with torch.inference_mode(), self.autocast():
                outs = self.model(batch)
            attributions = [None] * len(queries)
            for head in explained:  # integrated gradients: explain_steps+1 passes of their own
                idx = [i for i, q in enumerate(queries) if q.explain == head]
                targets = [queries[i].target for i in idx]
                target = targets if all(t is not None for t in targets) else None
                for i, attr in zip(idx, self.attribute([rows[i] for i in idx], head, target), strict=True):
                    attributions[i] = attr
        results = []
        for i, q in enumerate(queries):
            res: dict[str, Any] = {"heads": {h: _head_output(outs[h], i) for h in q.heads}}
            if attributions[i] is not None:
                res["attribution"] = attributions[i]
            results.append(res)
        return results

    def _grad_x_input(self, batch: dict, rows: list[Row], queries: list[Query]) -> tuple[dict, list]:
        """One forward with gradients over the embedded tokens x gives every head's output, then one backward
        per explained head gives attr = (x - x') * df/dx (x': the reference applicant for tabular tokens, 0
        elsewhere), as model.explain computes it with method grad_x_input, without its second forward."""
        model = self.model
        with torch.no_grad(), self.autocast():
            embedded = model.finmm.embed(batch)  # modality -> ((B, T_m, D), (B, T_m))
            base = {m: torch.zeros_like(x) for m, (x, _) in embedded.items()}
            if "tabular" in embedded:  # the reference applicant's tokens (B, F, D)
                base["tabular"] = model.finmm.embedders["tabular"](reference_tabular(batch["tabular"],
                                                                                     model.config))[0]
        xs = {m: x.detach().requires_grad_(True) for m, (x, _) in embedded.items()}  # (B, T_m, D) leaves
        needed = {h for q in queries for h in q.heads} | {q.explain for q in queries if q.explain}
        with torch.enable_grad(), self.autocast():
            pooled = model.finmm.fuse({m: (xs[m], embedded[m][1]) for m in xs}).pooled  # (B, D)
            outs = {h: model.heads[h](pooled) for h in needed}
        heads = sorted({q.explain for q in queries if q.explain})
        tokens: dict[str, torch.Tensor] = {m: torch.zeros(x.shape[:2]) for m, x in xs.items()}  # (B, T_m)
        for n, head in enumerate(heads):
            idx = [i for i, q in enumerate(queries) if q.explain == head]
            logits = outs[head]["logits"].float()[idx]  # (b,) or (b, K)
            if logits.dim() == 2:
                target = torch.tensor([queries[i].target if queries[i].target is not None else int(k)
                                       for i, k in zip(idx, logits.argmax(-1).tolist(), strict=True)])
                logits = logits.gather(1, target[:, None]).squeeze(1)  # (b,)
            grads = torch.autograd.grad(logits.sum(), list(xs.values()), retain_graph=n < len(heads) - 1)
            for (m, x), g in zip(xs.items(), grads, strict=True):
                tokens[m][idx] = ((x - base[m]) * g).sum(-1).float()[idx].detach()  # (b, T_m)
        outs = {h: {k: v.detach() for k, v in o.items()} for h, o in outs.items()}
        per_row = attribution_rows(batch, rows, tokens, model.config.tabular.feature_names)
        return outs, [per_row[i] if q.explain else None for i, q in enumerate(queries)]

    def info(self) -> dict:
        weights = self.model_dir / WEIGHTS_FILE
        evals = self.model_dir / EVAL_FILE
        evaluation = json.loads(evals.read_text()) if evals.exists() else {}
        trained = evaluation.get("date") if isinstance(evaluation, dict) else None
        if not trained:
            trained = datetime.fromtimestamp(weights.stat().st_mtime, UTC).isoformat()
        return {
            "name": self.model_dir.name,
            "version": _version(),
            "architecture": type(self.model).__name__,
            "heads": self.heads,
            "checkpoint_sha256": sha256_file(weights),
            "trained_at": trained,
            "evaluation": evaluation,
            "bf16": self.bf16,
            "explain_method": self.explain_method,
        }


def _head_output(out: dict[str, torch.Tensor], i: int) -> dict[str, Any]:
    res = {"probs": out["probs"][i].float().numpy()}
    if "embedding" in out:
        res["embedding"] = out["embedding"][i].float().numpy()
    return res


def attribution_rows(batch: dict, rows: list[Row], tokens: dict[str, torch.Tensor],
                     feature_names: list[str]) -> list[dict[str, Any]]:
    """Token attributions (modality -> (B, T_m)) -> per row: modality totals (of the modalities it has), words
    (WordPieces merged; needs the row's token strings) and its own data set's tabular features."""
    am = batch["text"]["attention_mask"].bool() if "text" in batch else None  # (B, T_text)
    results = []
    for i, row in enumerate(rows):
        res: dict[str, Any] = {"modalities": {m: float(t[i].float().sum()) for m, t in tokens.items()
                                              if _has(batch, m, i)}}
        if am is not None and "text" in tokens and row.tokens:
            padded = row.tokens + ["[PAD]"] * (am.shape[1] - len(row.tokens))
            kept = [t for t, k in zip(padded, am[i].tolist(), strict=True) if k]
            res["words"] = merge_wordpieces(kept, tokens["text"][i][am[i]].float().tolist())
        if "tabular" in tokens and row.dataset is not None:
            res["tabular"] = {n: float(v) for n, v in zip(feature_names, tokens["tabular"][i].float().tolist(),
                                                          strict=False) if n.startswith(f"{row.dataset}.")}
        results.append(res)
    return results


def forward_groups(queries: list[Query], bucket: bool = True) -> list[list[int]]:
    """Indices of `queries` per forward: explained apart from not (an explained forward needs gradients) and,
    with `bucket`, by modalities present and text length rounded up to a power of two, so one long text or
    one chart does not pad the whole batch."""
    groups: dict[tuple, list[int]] = {}
    for i, q in enumerate(queries):
        key: tuple = (q.explain is not None,)
        if bucket:
            ids = q.row.columns.get("input_ids")
            length = len(ids) if ids is not None else 0
            key += (tuple(sorted(_modalities(q.row))), 1 << max(length - 1, 0).bit_length())
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _modalities(row: Row) -> set[str]:
    cols = row.columns
    return {m for m, col in (("text", "input_ids"), ("image", "pixel_values"), ("tabular", "tab_numeric"),
                             ("series", "series_values")) if col in cols}


def _has(batch: dict, m: str, i: int) -> bool:
    flag = {"text": ("attention_mask",), "image": ("present",), "tabular": ("present",), "series": ("mask",)}[m][0]
    return bool(batch[m][flag][i].any())


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("finmm")
    except Exception:
        return "0.0.0"
